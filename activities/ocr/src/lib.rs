//! Payment-receipt OCR: reads a Yape / Plin screenshot into [`ReceiptFields`].
//!
//! The pipeline is the "T-auto" one measured in `../shared/notes/ocr.md` (§4, §6):
//!
//! 1. decode the image (JPEG or PNG, bounded size) and convert it to grayscale;
//! 2. **page pass**: Tesseract (`spa`, PSM 3) over the whole screen at native resolution; the
//!    words come back as TSV (text plus boxes), the text goes through the pure extractor
//!    [`zengine_domain::receipt::extract`];
//! 3. **amount pass**: the big amount line is cropped, its small stylised `S/` cut off by the ink
//!    height of each glyph column run, scaled to 80 px high and read as one line with a digit
//!    whitelist. Page and crop amounts that disagree lower the amount's confidence. When no
//!    amount line is found, one sparse-text (PSM 11) retry;
//! 4. only when the amount, operation code or date is still missing, everything reruns on a
//!    1440 px upscale and fills the gaps.
//!
//! An [`Engine`] owns two Tesseract instances (page and digits), created once (~60 ms each) and
//! reused; it is `Send` but not `Sync`: keep one per thread and get parallelism from a pool
//! ([`EnginePool`]). Set `OMP_THREAD_LIMIT=1` in the process environment: OpenMP threads inside
//! Tesseract thrash on small machines (p95 of seconds instead of ~250 ms).
//!
//! Extraction and reconciliation are pure functions in `zengine_domain::receipt`; this crate only
//! turns pixels into text.

use std::sync::Mutex;
use std::time::Instant;

use image::{GrayImage, ImageReader, imageops};
use serde::Serialize;
use tesseract::{PageSegMode, Tesseract};
use zengine_domain::money::Cents;
use zengine_domain::receipt::{self, ReceiptFields};

/// Images larger than this (either side, in pixels) are refused before decoding.
pub const MAX_SIDE: u32 = 6_000;
/// Encoded images larger than this are refused.
pub const MAX_BYTES: usize = 10 * 1024 * 1024;
/// Width of the fallback upscale pass.
const UPSCALE_WIDTH: u32 = 1_440;
/// Height the amount crop is scaled to before the digit pass.
const AMOUNT_HEIGHT: u32 = 80;

/// Why an image could not be read. Every variant is about the input or the installation, so the
/// payment workflow treats them as "send to manual review", never as "retry forever".
#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    #[error("the image is empty")]
    Empty,
    #[error("the image is {0} bytes; at most {MAX_BYTES} are accepted")]
    TooLarge(usize),
    #[error("the image is {0}x{1} pixels; at most {MAX_SIDE} per side are accepted")]
    TooManyPixels(u32, u32),
    #[error("not a readable JPEG or PNG image: {0}")]
    Decode(String),
    #[error("the OCR engine could not start (is tesseract-ocr-spa installed?): {0}")]
    Init(String),
    #[error("the OCR engine failed: {0}")]
    Engine(String),
}

/// The result of reading one image.
#[derive(Debug, Clone, Serialize)]
pub struct Reading {
    pub fields: ReceiptFields,
    /// Text of the page pass (kept as the payment's raw OCR data for manual review).
    pub page_text: String,
    /// What the amount pass read, if it ran.
    pub amount_pass: Option<String>,
    /// Which passes ran, in order (`page`, `amount`, `sparse`, `upscale`).
    pub passes: Vec<&'static str>,
    pub width: u32,
    pub height: u32,
    pub elapsed_ms: u64,
}

/// One word of the page pass with its box.
#[derive(Debug, Clone)]
struct Word {
    line: (u32, u32, u32),
    left: u32,
    top: u32,
    width: u32,
    height: u32,
    text: String,
}

/// A text line: its words joined and the union of their boxes.
#[derive(Debug, Clone)]
struct Line {
    text: String,
    left: u32,
    top: u32,
    right: u32,
    bottom: u32,
    max_word_height: u32,
}

/// Tesseract instances for the receipt pipeline (one thread at a time).
pub struct Engine {
    page: Option<Tesseract>,
    digits: Option<Tesseract>,
    datapath: Option<String>,
    language: String,
}

impl Engine {
    /// Starts the engine with `language` (normally `spa`) from `datapath` (None: the system's
    /// tessdata, `/usr/share/tesseract-ocr/5/tessdata` on Debian).
    pub fn new(datapath: Option<&str>, language: &str) -> Result<Self, OcrError> {
        let mut engine = Engine {
            page: None,
            digits: None,
            datapath: datapath.map(str::to_owned),
            language: language.to_owned(),
        };
        engine.page = Some(engine.start(false)?);
        engine.digits = Some(engine.start(true)?);
        Ok(engine)
    }

    fn start(&self, digits: bool) -> Result<Tesseract, OcrError> {
        let tess = Tesseract::new(self.datapath.as_deref(), Some(&self.language))
            .map_err(|e| OcrError::Init(e.to_string()))?;
        let tess = tess
            .set_variable("debug_file", "/dev/null")
            .and_then(|t| t.set_variable("tessedit_do_invert", "0"))
            .map_err(|e| OcrError::Init(e.to_string()))?;
        if digits {
            tess.set_variable("tessedit_char_whitelist", "0123456789.,")
                .map_err(|e| OcrError::Init(e.to_string()))
        } else {
            Ok(tess)
        }
    }

    /// Reads one encoded image (JPEG or PNG).
    pub fn read(&mut self, bytes: &[u8]) -> Result<Reading, OcrError> {
        let started = Instant::now();
        let gray = decode(bytes)?;
        let (width, height) = gray.dimensions();
        let mut passes = vec!["page"];
        let (mut fields, page_text, mut amount_pass) = self.read_gray(&gray, &mut passes)?;
        if !receipt::missing_key_fields(&fields).is_empty() && width < UPSCALE_WIDTH {
            passes.push("upscale");
            let new_height =
                (u64::from(height) * u64::from(UPSCALE_WIDTH) / u64::from(width)).max(1) as u32;
            let big = imageops::resize(
                &gray,
                UPSCALE_WIDTH,
                new_height,
                imageops::FilterType::CatmullRom,
            );
            let (fallback, _, fallback_amount) = self.read_gray(&big, &mut passes)?;
            fields = receipt::fill_missing(fields, fallback);
            amount_pass = amount_pass.or(fallback_amount);
        }
        Ok(Reading {
            fields,
            page_text,
            amount_pass,
            passes,
            width,
            height,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// Page pass + amount pass (+ sparse retry) over one grayscale image.
    fn read_gray(
        &mut self,
        gray: &GrayImage,
        passes: &mut Vec<&'static str>,
    ) -> Result<(ReceiptFields, String, Option<String>), OcrError> {
        let tsv = self.recognize(false, gray, PageSegMode::PsmAuto, true)?;
        let lines = lines_of(&parse_tsv(&tsv));
        let page_text = lines
            .iter()
            .map(|l| l.text.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let mut fields = receipt::extract(&page_text);

        let amount_line = lines
            .iter()
            .filter(|l| receipt::is_amount_line(&l.text))
            .max_by_key(|l| l.max_word_height);
        let mut amount_pass = None;
        match amount_line {
            Some(line) => {
                passes.push("amount");
                if let Some(crop) = amount_crop(gray, line) {
                    let text = self.recognize(true, &crop, PageSegMode::PsmSingleLine, false)?;
                    let crop_amount: Option<Cents> = receipt::parse_amount_line(text.trim());
                    fields = receipt::merge_amount(fields, crop_amount);
                    amount_pass = Some(text.trim().to_owned());
                }
            }
            None if fields.amount.is_none() => {
                passes.push("sparse");
                let sparse = self.recognize(false, gray, PageSegMode::PsmSparseText, false)?;
                fields = receipt::fill_missing(fields, receipt::extract(&sparse));
            }
            None => {}
        }
        Ok((fields, page_text, amount_pass))
    }

    /// Runs one Tesseract instance over `img`; returns TSV when `tsv`, plain text otherwise. An
    /// instance that failed mid-call is replaced so the engine stays usable.
    fn recognize(
        &mut self,
        digits: bool,
        img: &GrayImage,
        psm: PageSegMode,
        tsv: bool,
    ) -> Result<String, OcrError> {
        let slot = if digits {
            &mut self.digits
        } else {
            &mut self.page
        };
        let mut tess = match slot.take() {
            Some(t) => t,
            None => self.start(digits)?,
        };
        tess.set_page_seg_mode(psm);
        let (w, h) = img.dimensions();
        let result = tess
            .set_frame(img.as_raw(), w as i32, h as i32, 1, w as i32)
            .map_err(|e| OcrError::Engine(e.to_string()))
            .and_then(|t| t.recognize().map_err(|e| OcrError::Engine(e.to_string())));
        let mut tess = result?;
        let text = if tsv {
            tess.get_tsv_text(0)
                .map_err(|e| OcrError::Engine(e.to_string()))
        } else {
            tess.get_text().map_err(|e| OcrError::Engine(e.to_string()))
        };
        let slot = if digits {
            &mut self.digits
        } else {
            &mut self.page
        };
        *slot = Some(tess);
        text
    }
}

/// A fixed set of engines shared by threads (each call takes one engine for its duration).
pub struct EnginePool {
    engines: Mutex<Vec<Engine>>,
    datapath: Option<String>,
    language: String,
}

impl EnginePool {
    /// Creates `size` engines up front so the first images do not pay the start-up.
    pub fn new(size: usize, datapath: Option<&str>, language: &str) -> Result<Self, OcrError> {
        let engines = (0..size.max(1))
            .map(|_| Engine::new(datapath, language))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EnginePool {
            engines: Mutex::new(engines),
            datapath: datapath.map(str::to_owned),
            language: language.to_owned(),
        })
    }

    /// Reads an image on the calling thread with a pooled engine (a new one when all are busy).
    /// Blocking: call it from `spawn_blocking`.
    pub fn read(&self, bytes: &[u8]) -> Result<Reading, OcrError> {
        let engine = self.engines.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut engine = match engine {
            Some(e) => e,
            None => Engine::new(self.datapath.as_deref(), &self.language)?,
        };
        let result = engine.read(bytes);
        self.engines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(engine);
        result
    }
}

/// Decodes and bounds-checks an encoded image, returning its grayscale pixels.
pub fn decode(bytes: &[u8]) -> Result<GrayImage, OcrError> {
    if bytes.is_empty() {
        return Err(OcrError::Empty);
    }
    if bytes.len() > MAX_BYTES {
        return Err(OcrError::TooLarge(bytes.len()));
    }
    let reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| OcrError::Decode(e.to_string()))?;
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| OcrError::Decode(e.to_string()))?;
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(OcrError::TooManyPixels(w, h));
    }
    if w < 16 || h < 16 {
        return Err(OcrError::Decode(format!("{w}x{h} pixels is too small")));
    }
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| OcrError::Decode(e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| OcrError::Decode(e.to_string()))?;
    let mut gray = img.to_luma8();
    // Light text on a dark screen (the inverted Yape card): make it dark on light once here, so
    // Tesseract need not try every line both ways (`tessedit_do_invert` is off: 2x faster).
    if mean_luma(&gray) < 128 {
        imageops::invert(&mut gray);
    }
    Ok(gray)
}

/// Parses Tesseract's TSV (level 5 rows are words).
fn parse_tsv(tsv: &str) -> Vec<Word> {
    tsv.lines()
        .filter_map(|row| {
            let cols: Vec<&str> = row.split('\t').collect();
            if cols.len() < 12 || cols[0] != "5" {
                return None;
            }
            let num = |i: usize| cols[i].trim().parse::<u32>().ok();
            let text = cols[11..].join("\t").trim().to_owned();
            if text.is_empty() {
                return None;
            }
            Some(Word {
                line: (num(2)?, num(3)?, num(4)?),
                left: num(6)?,
                top: num(7)?,
                width: num(8)?,
                height: num(9)?,
                text,
            })
        })
        .collect()
}

/// Groups words into lines in reading order.
fn lines_of(words: &[Word]) -> Vec<Line> {
    let mut lines: Vec<(_, Line)> = Vec::new();
    for w in words {
        match lines.iter_mut().find(|(key, _)| *key == w.line) {
            Some((_, line)) => {
                line.text.push(' ');
                line.text.push_str(&w.text);
                line.left = line.left.min(w.left);
                line.top = line.top.min(w.top);
                line.right = line.right.max(w.left + w.width);
                line.bottom = line.bottom.max(w.top + w.height);
                line.max_word_height = line.max_word_height.max(w.height);
            }
            None => lines.push((
                w.line,
                Line {
                    text: w.text.clone(),
                    left: w.left,
                    top: w.top,
                    right: w.left + w.width,
                    bottom: w.top + w.height,
                    max_word_height: w.height,
                },
            )),
        }
    }
    lines.into_iter().map(|(_, l)| l).collect()
}

/// Crops the amount line, normalises it to dark text on white, cuts off the small leading
/// glyphs (the stylised `S/`) and scales it to [`AMOUNT_HEIGHT`] pixels high.
fn amount_crop(gray: &GrayImage, line: &Line) -> Option<GrayImage> {
    let (w, h) = gray.dimensions();
    let pad = (line.bottom - line.top) / 4 + 2;
    // Extend to the left: the small "S/" is often not part of the recognised line.
    let left = line
        .left
        .saturating_sub((line.bottom - line.top) * 2)
        .min(w.saturating_sub(1));
    let top = line.top.saturating_sub(pad);
    let right = (line.right + pad).min(w);
    let bottom = (line.bottom + pad).min(h);
    if right <= left + 4 || bottom <= top + 4 {
        return None;
    }
    let mut crop = imageops::crop_imm(gray, left, top, right - left, bottom - top).to_image();

    // Light text on a dark card: make it dark on light.
    if mean_luma(&crop) < 128 {
        imageops::invert(&mut crop);
    }
    let threshold = otsu(&crop);
    let (cw, ch) = crop.dimensions();
    let ink = |x: u32, y: u32| crop.get_pixel(x, y).0[0] < threshold;

    // Runs of columns containing ink, with the vertical extent of their ink.
    let mut runs: Vec<(u32, u32, u32, u32)> = Vec::new(); // (x0, x1, top, bottom)
    let mut current: Option<(u32, u32, u32, u32)> = None;
    for x in 0..cw {
        let rows: Vec<u32> = (0..ch).filter(|&y| ink(x, y)).collect();
        match (rows.first(), rows.last(), current.as_mut()) {
            (Some(&t), Some(&b), Some(run)) => {
                run.1 = x;
                run.2 = run.2.min(t);
                run.3 = run.3.max(b);
            }
            (Some(&t), Some(&b), None) => current = Some((x, x, t, b)),
            _ => {
                if let Some(run) = current.take() {
                    runs.push(run);
                }
            }
        }
    }
    runs.extend(current);
    let tallest = runs.iter().map(|r| r.3 - r.2).max()?;
    if tallest < 4 {
        return None;
    }
    // The first glyph run that reaches 75 % of the tallest one starts the digits.
    let start = runs.iter().find(|r| (r.3 - r.2) * 4 >= tallest * 3)?;
    let end = runs.last()?.1;
    let (x0, x1) = (start.0, end + 1);
    let y0 = runs
        .iter()
        .filter(|r| r.0 >= x0)
        .map(|r| r.2)
        .min()
        .unwrap_or(0);
    let y1 = runs
        .iter()
        .filter(|r| r.0 >= x0)
        .map(|r| r.3)
        .max()
        .unwrap_or(ch - 1)
        + 1;
    if x1 <= x0 || y1 <= y0 {
        return None;
    }
    let digits = imageops::crop_imm(&crop, x0, y0, x1 - x0, y1 - y0).to_image();
    let scale = AMOUNT_HEIGHT as f32 / digits.height() as f32;
    let new_w = ((digits.width() as f32 * scale).round() as u32).clamp(1, 4_000);
    let scaled = imageops::resize(
        &digits,
        new_w,
        AMOUNT_HEIGHT,
        imageops::FilterType::CatmullRom,
    );
    // A white margin helps Tesseract's line finder.
    let margin = AMOUNT_HEIGHT / 4;
    let mut out = GrayImage::from_pixel(
        new_w + 2 * margin,
        AMOUNT_HEIGHT + 2 * margin,
        image::Luma([255]),
    );
    imageops::overlay(&mut out, &scaled, i64::from(margin), i64::from(margin));
    Some(out)
}

/// Mean brightness of a grayscale image.
fn mean_luma(img: &GrayImage) -> u64 {
    img.pixels().map(|p| u64::from(p.0[0])).sum::<u64>() / img.len().max(1) as u64
}

/// Otsu's threshold of a grayscale image.
fn otsu(img: &GrayImage) -> u8 {
    let mut hist = [0u64; 256];
    for p in img.pixels() {
        hist[p.0[0] as usize] += 1;
    }
    let total = img.len() as f64;
    let sum: f64 = hist
        .iter()
        .enumerate()
        .map(|(i, &c)| i as f64 * c as f64)
        .sum();
    let (mut sum_b, mut w_b, mut best, mut threshold) = (0.0, 0.0, 0.0, 128u8);
    for (t, &count) in hist.iter().enumerate() {
        w_b += count as f64;
        if w_b == 0.0 {
            continue;
        }
        let w_f = total - w_b;
        if w_f == 0.0 {
            break;
        }
        sum_b += t as f64 * count as f64;
        let (m_b, m_f) = (sum_b / w_b, (sum - sum_b) / w_f);
        let between = w_b * w_f * (m_b - m_f) * (m_b - m_f);
        if between > best {
            best = between;
            threshold = t as u8;
        }
    }
    threshold.saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_rows_group_into_lines() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
                   5\t1\t1\t1\t1\t1\t10\t20\t30\t40\t96\tS/\n\
                   5\t1\t1\t1\t1\t2\t50\t10\t60\t80\t95\t23.50\n\
                   4\t1\t1\t1\t2\t0\t10\t100\t100\t20\t-1\t\n\
                   5\t1\t1\t1\t2\t1\t10\t100\t50\t20\t90\tNro.\n";
        let lines = lines_of(&parse_tsv(tsv));
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].text, "S/ 23.50");
        assert_eq!(
            (lines[0].left, lines[0].top, lines[0].right, lines[0].bottom),
            (10, 10, 110, 90)
        );
        assert_eq!(lines[0].max_word_height, 80);
        assert_eq!(lines[1].text, "Nro.");
    }

    #[test]
    fn bad_images_are_refused_with_a_reason() {
        assert!(matches!(decode(&[]), Err(OcrError::Empty)));
        assert!(matches!(decode(b"not an image"), Err(OcrError::Decode(_))));
        let huge = vec![0u8; MAX_BYTES + 1];
        assert!(matches!(decode(&huge), Err(OcrError::TooLarge(_))));
        // A PNG header claiming 100000 x 100000 pixels is refused before allocating.
        let mut png = Vec::new();
        png.extend_from_slice(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(matches!(
            decode(&png),
            Err(OcrError::TooManyPixels(..)) | Err(OcrError::Decode(_))
        ));
    }

    #[test]
    fn otsu_splits_two_levels() {
        let mut img = GrayImage::from_pixel(10, 10, image::Luma([240]));
        for x in 0..5 {
            for y in 0..10 {
                img.put_pixel(x, y, image::Luma([20]));
            }
        }
        let t = otsu(&img);
        assert!(t > 20 && t <= 240, "{t}");
    }
}
