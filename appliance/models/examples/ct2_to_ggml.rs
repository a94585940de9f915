//! Converts a CTranslate2 Whisper `model.bin` to ggml: `ct2_to_ggml MODEL_BIN ASSETS_DIR OUT [q8_0]`.
//!
//! A developer tool for checking the converter against the reference script;
//! the product converts during `voiceblock models fetch`.

use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;

use vb_models::ct2::{convert_to_ggml, Ct2Model, GgmlWeights, WhisperAssets};

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let (model, assets, out, weights) = match args.as_slice() {
        [model, assets, out] => (model, assets, out, GgmlWeights::F16),
        [model, assets, out, q] if q.as_os_str() == "q8_0" => {
            (model, assets, out, GgmlWeights::Q8_0)
        }
        _ => {
            eprintln!("usage: ct2_to_ggml MODEL_BIN WHISPER_ASSETS_DIR OUT.bin [q8_0]");
            return ExitCode::from(2);
        }
    };
    let result = (|| -> Result<_, Box<dyn std::error::Error>> {
        let model = Ct2Model::open(model)?;
        let assets = WhisperAssets::from_dir(assets)?;
        let file = std::fs::File::create(out)?;
        Ok(convert_to_ggml(
            &model,
            &assets,
            weights,
            BufWriter::new(file),
        )?)
    })();
    match result {
        Ok(summary) => {
            eprintln!("{summary:?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
