//! Travel matrices for route optimisation: great-circle (haversine, the default) or a road
//! network through an OSRM server's table service
//! (`GET /table/v1/{profile}/{lon,lat;...}?sources=..&destinations=..&annotations=duration,distance`,
//! answering `{"code": "Ok", "durations": [[s]], "distances": [[m]]}`).
//!
//! OSRM refuses tables above its `--max-table-size` (100 by default) with `TooBig`, so larger
//! inputs are fetched in blocks of at most `max_table_size` sources × `max_table_size`
//! destinations and stitched together. Errors are classified: a timeout, a connection error,
//! 429 or 5xx is [`MatrixError::Unavailable`] (retry), anything else (4xx, a body that is not
//! the documented shape, a missing route, a negative or non-finite value) is
//! [`MatrixError::Invalid`] (retrying cannot help).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use zengine_domain::Location;

/// Which matrix the route optimisation uses (`[worker.routing]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatrixProvider {
    /// Great-circle distances and `options.speed_kmh` for times.
    #[default]
    Haversine,
    /// Road distances and durations from an OSRM server.
    Osrm,
}

/// `[worker.routing]`: the travel matrix provider of route optimisation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatrixSettings {
    /// `haversine` (default) or `osrm`.
    pub matrix: MatrixProvider,
    /// Base URL of the OSRM server, e.g. `http://osrm:5000`.
    pub osrm_url: String,
    /// OSRM profile in the URL (`driving`).
    pub osrm_profile: String,
    /// Timeout of each table request, in milliseconds.
    pub osrm_timeout_ms: u64,
    /// Largest number of sources (and of destinations) per request: the server's
    /// `--max-table-size` (OSRM's default is 100). Larger plans are fetched in blocks.
    pub osrm_max_table_size: usize,
    /// When OSRM answers something unusable (or stays unavailable through the last attempt),
    /// plan on haversine instead of failing; the result says `"matrix": "haversine_fallback"`.
    pub osrm_fallback_to_haversine: bool,
}

impl Default for MatrixSettings {
    fn default() -> Self {
        Self {
            matrix: MatrixProvider::Haversine,
            osrm_url: String::new(),
            osrm_profile: "driving".into(),
            osrm_timeout_ms: 10_000,
            osrm_max_table_size: 100,
            osrm_fallback_to_haversine: false,
        }
    }
}

impl MatrixSettings {
    /// Rejects an unusable OSRM configuration, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.matrix != MatrixProvider::Osrm {
            return Ok(());
        }
        if !(self.osrm_url.starts_with("http://") || self.osrm_url.starts_with("https://")) {
            return Err(
                "worker.routing.osrm_url: an http(s) URL is needed with matrix = \"osrm\"".into(),
            );
        }
        if self.osrm_profile.is_empty()
            || !self
                .osrm_profile
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err("worker.routing.osrm_profile: letters, digits, `-` or `_`".into());
        }
        if !(1..=600_000).contains(&self.osrm_timeout_ms) {
            return Err("worker.routing.osrm_timeout_ms: 1 to 600000".into());
        }
        if !(2..=10_000).contains(&self.osrm_max_table_size) {
            return Err("worker.routing.osrm_max_table_size: 2 to 10000".into());
        }
        Ok(())
    }
}

/// Why a road matrix could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatrixError {
    /// Timeout, connection error, 429 or 5xx: worth retrying.
    #[error("OSRM table unavailable: {0}")]
    Unavailable(String),
    /// A response retrying cannot fix.
    #[error("OSRM table unusable: {0}")]
    Invalid(String),
}

/// Row-major `n × n` distances (metres) and durations (seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct TravelMatrix {
    pub metres: Vec<i64>,
    pub seconds: Vec<i64>,
}

/// Great-circle distance in metres.
pub fn haversine_m(a: Location, b: Location) -> f64 {
    let (la1, la2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = la2 - la1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la1.cos() * la2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * 6_371_000.0 * h.sqrt().asin()
}

/// Haversine distances, and times at `speed_kmh`.
pub fn haversine(points: &[Location], speed_kmh: f64) -> TravelMatrix {
    let mut metres = Vec::with_capacity(points.len() * points.len());
    for &a in points {
        for &b in points {
            metres.push(haversine_m(a, b).round() as i64);
        }
    }
    let metres_per_second = speed_kmh / 3.6;
    let seconds = metres
        .iter()
        .map(|&d| (d as f64 / metres_per_second).round() as i64)
        .collect();
    TravelMatrix { metres, seconds }
}

#[derive(Deserialize)]
struct TableResponse {
    code: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    durations: Option<Vec<Vec<Option<f64>>>>,
    #[serde(default)]
    distances: Option<Vec<Vec<Option<f64>>>>,
}

/// Largest table response accepted (bytes).
const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// The road matrix of `points` from OSRM, in blocks of at most `osrm_max_table_size`
/// sources × destinations.
pub async fn osrm(
    http: &reqwest::Client,
    settings: &MatrixSettings,
    points: &[Location],
) -> Result<TravelMatrix, MatrixError> {
    let n = points.len();
    let block = settings.osrm_max_table_size.max(1);
    let mut metres = vec![0i64; n * n];
    let mut seconds = vec![0i64; n * n];
    let starts: Vec<usize> = (0..n).step_by(block).collect();
    for &s0 in &starts {
        let sources: Vec<usize> = (s0..(s0 + block).min(n)).collect();
        for &d0 in &starts {
            let destinations: Vec<usize> = (d0..(d0 + block).min(n)).collect();
            // Coordinates of the request: the sources, then the destinations not among them.
            let mut coords = sources.clone();
            coords.extend(destinations.iter().filter(|d| !sources.contains(d)));
            let index = |p: usize| coords.iter().position(|&c| c == p).expect("listed");
            let (dist, dur) = table(
                http,
                settings,
                &coords.iter().map(|&i| points[i]).collect::<Vec<_>>(),
                &sources.iter().map(|&p| index(p)).collect::<Vec<_>>(),
                &destinations.iter().map(|&p| index(p)).collect::<Vec<_>>(),
            )
            .await?;
            for (a, &i) in sources.iter().enumerate() {
                for (b, &j) in destinations.iter().enumerate() {
                    if i != j {
                        metres[i * n + j] = dist[a][b];
                        seconds[i * n + j] = dur[a][b];
                    }
                }
            }
        }
    }
    Ok(TravelMatrix { metres, seconds })
}

type Grid = Vec<Vec<i64>>;

async fn table(
    http: &reqwest::Client,
    settings: &MatrixSettings,
    coords: &[Location],
    sources: &[usize],
    destinations: &[usize],
) -> Result<(Grid, Grid), MatrixError> {
    let join = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(";");
    let points = coords
        .iter()
        .map(|l| format!("{:.6},{:.6}", l.lon, l.lat))
        .collect::<Vec<_>>()
        .join(";");
    let url = format!(
        "{}/table/v1/{}/{points}?sources={}&destinations={}&annotations=duration,distance",
        settings.osrm_url.trim_end_matches('/'),
        settings.osrm_profile,
        join(sources),
        join(destinations)
    );
    let response = http
        .get(&url)
        .timeout(Duration::from_millis(settings.osrm_timeout_ms))
        .send()
        .await
        .map_err(|e| {
            MatrixError::Unavailable(if e.is_timeout() {
                format!("no answer within {} ms", settings.osrm_timeout_ms)
            } else {
                format!("{e}")
            })
        })?;
    let status = response.status();
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(MatrixError::Unavailable(format!("HTTP {status}")));
    }
    if response
        .content_length()
        .is_some_and(|l| l as usize > MAX_RESPONSE_BYTES)
    {
        return Err(MatrixError::Invalid(format!(
            "response larger than {MAX_RESPONSE_BYTES} bytes"
        )));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| MatrixError::Unavailable(format!("reading the response: {e}")))?;
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(MatrixError::Invalid(format!(
            "response larger than {MAX_RESPONSE_BYTES} bytes"
        )));
    }
    let parsed: TableResponse = serde_json::from_slice(&body).map_err(|e| {
        MatrixError::Invalid(format!("HTTP {status}: not an OSRM table response: {e}"))
    })?;
    if !status.is_success() || parsed.code != "Ok" {
        return Err(MatrixError::Invalid(format!(
            "HTTP {status}: code `{}`: {}",
            parsed.code,
            parsed.message.unwrap_or_default()
        )));
    }
    let grid = |name: &str, g: Option<Vec<Vec<Option<f64>>>>| -> Result<Grid, MatrixError> {
        let g = g.ok_or_else(|| {
            MatrixError::Invalid(format!("no `{name}` (annotations=duration,distance)"))
        })?;
        if g.len() != sources.len() || g.iter().any(|row| row.len() != destinations.len()) {
            return Err(MatrixError::Invalid(format!(
                "`{name}` is not {} × {}",
                sources.len(),
                destinations.len()
            )));
        }
        g.into_iter()
            .enumerate()
            .map(|(a, row)| {
                row.into_iter()
                    .enumerate()
                    .map(|(b, v)| match v {
                        Some(v) if v.is_finite() && v >= 0.0 => Ok(v.round() as i64),
                        Some(v) => Err(MatrixError::Invalid(format!("`{name}` holds {v}"))),
                        None => Err(MatrixError::Invalid(format!(
                            "no road route from {:?} to {:?}",
                            coords[sources[a]], coords[destinations[b]]
                        ))),
                    })
                    .collect()
            })
            .collect()
    };
    Ok((
        grid("distances", parsed.distances)?,
        grid("durations", parsed.durations)?,
    ))
}
