//! `zengine ocr receipt IMAGE`: reads a payment screenshot the way the `ocr` workers do and
//! prints the extraction as JSON, for operators debugging a payment and for measurement.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand)]
pub enum OcrCommand {
    /// Print the fields read from a Yape / Plin receipt image (JPEG or PNG).
    Receipt {
        image: PathBuf,
        /// Tesseract language data (default: the system's, e.g. /usr/share/tesseract-ocr/5/tessdata).
        #[arg(long)]
        tessdata: Option<String>,
        /// Also print the OCR page text and the passes that ran.
        #[arg(long)]
        verbose: bool,
    },
}

/// Runs the command; returns the process exit code (0 read, 1 unreadable, 2 usage/engine error).
pub fn run(command: OcrCommand) -> u8 {
    let OcrCommand::Receipt {
        image,
        tessdata,
        verbose,
    } = command;
    let bytes = match std::fs::read(&image) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", image.display());
            return 2;
        }
    };
    let mut engine = match zengine_ocr::Engine::new(tessdata.as_deref(), "spa") {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    match engine.read(&bytes) {
        Ok(reading) => {
            let f = &reading.fields;
            let mut out = json!({
                "wallet": f.wallet,
                "amount": f.amount.map(|c| c.to_string()),
                "operation_code": f.operation_code,
                "date": f.date,
                "time": f.time,
                "counterparty": f.counterparty,
                "confidence": f.confidence,
                "elapsed_ms": reading.elapsed_ms,
            });
            if verbose {
                out["passes"] = json!(reading.passes);
                out["amount_pass"] = json!(reading.amount_pass);
                out["page_text"] = json!(reading.page_text);
            }
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            0
        }
        Err(e) => {
            eprintln!("error: {}: {e}", image.display());
            1
        }
    }
}
