//! The worker runtime of ZEngine: connecting to Temporal, registering workflows and activities
//! per task queue, tuning, graceful shutdown and worker metrics; plus the supervisor of the
//! embedded Temporal dev server used by `zengine dev` and by the test harness.

pub mod codec;
pub mod devserver;
pub mod health;
pub mod temporal;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod worker;

pub use codec::{CodecKeySettings, CodecSettings, EncryptionCodec};
pub use devserver::{DevServer, DevServerSettings};
pub use temporal::{TemporalSettings, connect, connect_with_codec, ensure_search_attributes};
pub use worker::{QueueTuning, WorkerSettings, run_workers};
