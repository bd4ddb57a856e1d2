//! The sparse-coding runs on natural-image patches (EM with annealing, an amortized encoder),
//! their bit-for-bit resume and denoising, on small synthetic textures.

/// Two 40×40 training textures and a 24×24 held-out one in `dir/images`, which is returned.
fn texture_images(dir: &std::path::Path) -> std::path::PathBuf {
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    texture(&images.join("a.png"), 40, 0.0);
    texture(&images.join("b.png"), 40, 1.3);
    texture(&images.join("held-out.png"), 24, 2.1);
    images
}

fn texture(path: &std::path::Path, size: u32, phase: f64) {
    let image = image::GrayImage::from_fn(size, size, |x, y| {
        let (x, y) = (x as f64, y as f64);
        let v = 0.5 + 0.25 * ((x + 2.0 * y) / 3.0 + phase).sin() + 0.2 * ((x - y) / 5.0).cos();
        image::Luma([(v.clamp(0.0, 1.0) * 255.0) as u8])
    });
    image.save(path).unwrap();
}

#[test]
fn patches_em_with_annealing_runs_end_to_end_and_denoises() {
    use helmholtz_experiments::sparse::denoise::{DenoiseConfig, denoise_run};
    use helmholtz_experiments::sparse::{SparseConfig, run_patches};
    let dir = std::env::temp_dir().join(format!("helmholtz-patches-{}", std::process::id()));
    let images = texture_images(&dir);
    let text = format!(
        r#"
        name = "patches-test"
        [data]
        source = "patches"
        size = 4
        n = 256
        test_n = 64
        images = ["a.png", "b.png"]
        dir = "{}"
        [model]
        n_latents = 6
        posterior = "diagonal"
        scale_floor = 1e-3
        [train]
        method = "em"
        max_iters = 15
        batch_size = 64
        epochs = 3
        anneal = {{ kind = "steps", values = [3.0, 1.0] }}
        "#,
        images.display()
    );
    let config = SparseConfig::parse(&text, &[], std::path::Path::new("test")).unwrap();
    let run = dir.join("run");
    let (_, epochs, terms) = run_patches(&config, 0, &run, |_, _, _| {}).unwrap();
    interrupted_patches_run_resumes_bit_for_bit(&config, &run, &dir.join("parts"));
    assert_eq!(epochs.len(), 3);
    assert_eq!(
        epochs.iter().map(|e| e.train.beta).collect::<Vec<_>>(),
        [3.0, 1.0, 1.0]
    );
    assert!(
        epochs
            .iter()
            .all(|e| e.test.elbo.is_finite() && e.gini.0 > 0.0 && e.gini.0 < 1.0)
    );
    assert_eq!(terms.lambda.len(), 6);
    for file in [
        "config.toml",
        "metrics.jsonl",
        "model.safetensors",
        "summary.json",
    ] {
        assert!(run.join(file).is_file(), "{file}");
    }
    let (outcome, images_out) = denoise_run(
        &run,
        &DenoiseConfig {
            image: "held-out.png".into(),
            stride: 2,
            map_iterations: 50,
            ..DenoiseConfig::default()
        },
    )
    .unwrap();
    assert_eq!(images_out.shape, (24, 24));
    assert!(outcome.noisy > 15.0 && outcome.noisy < 25.0, "{outcome:?}");
    assert!(
        outcome.posterior.is_finite() && outcome.map.is_finite() && outcome.map_best >= outcome.map
    );
    // A training image is refused as the held-out one.
    let reuse = DenoiseConfig {
        image: "a.png".into(),
        ..DenoiseConfig::default()
    };
    assert!(denoise_run(&run, &reuse).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn amortized_patches_run_trains_the_encoder_and_reports_the_amortization_gap() {
    use helmholtz_experiments::sparse::denoise::{DenoiseConfig, denoise_run};
    use helmholtz_experiments::sparse::{SparseConfig, run_patches};
    let dir = std::env::temp_dir().join(format!("helmholtz-amortized-{}", std::process::id()));
    let images = texture_images(&dir);
    let text = |extra: &str| {
        format!(
            r#"
            name = "amortized-test"
            [data]
            source = "patches"
            size = 4
            n = 512
            test_n = 128
            images = ["a.png", "b.png"]
            dir = "{}"
            whiten = "olshausen-field"
            [model]
            n_latents = 6
            posterior = "amortized"
            scale_floor = 1e-3
            {extra}
            [train]
            method = "adam"
            max_iters = 15
            batch_size = 64
            epochs = 4
            lr = 3e-3
            refine_every = 2
            "#,
            images.display()
        )
    };
    let origin = std::path::Path::new("test");
    // Bad combinations are refused with a message.
    assert!(SparseConfig::parse(&text(""), &[], origin).is_err());
    assert!(
        SparseConfig::parse(&text("encoder = { hidden = [8], rank = 9 }"), &[], origin).is_err()
    );
    let no_encoder = text("").replace("posterior = \"amortized\"", "posterior = \"diagonal\"");
    assert!(SparseConfig::parse(&no_encoder, &[], origin).is_err());

    let config =
        SparseConfig::parse(&text("encoder = { hidden = [16], rank = 2 }"), &[], origin).unwrap();
    let run = dir.join("run");
    let (w, epochs, terms) = run_patches(&config, 0, &run, |_, _, _| {}).unwrap();
    interrupted_patches_run_resumes_bit_for_bit(&config, &run, &dir.join("parts"));
    assert_eq!(
        (w.nrows(), w.ncols(), epochs.len(), terms.lambda.len()),
        (16, 6, 4, 6)
    );
    for e in &epochs {
        assert_eq!(
            e.test_refined.is_some(),
            e.epoch % 2 == 0,
            "epoch {}",
            e.epoch
        );
        if let Some(refined) = &e.test_refined {
            // Refining the encoder's posteriors by the E-step can only raise the objective.
            assert!(refined.elbo >= e.test.elbo - 1e-9, "{e:?}");
        }
    }
    assert!(
        epochs[3].train.elbo > epochs[0].train.elbo,
        "training ELBO {} → {}",
        epochs[0].train.elbo,
        epochs[3].train.elbo
    );
    let stored =
        helmholtz::run::checkpoint::read_all_tensors(&run.join("model.safetensors")).unwrap();
    assert!(stored.get("dictionary").is_some());
    assert!(
        stored
            .tensors
            .iter()
            .any(|t| t.name.starts_with("encoder."))
    );
    // Denoising needs a ZCA filter to invert; this run filtered whole images.
    let err = denoise_run(
        &run,
        &DenoiseConfig {
            image: "held-out.png".into(),
            ..DenoiseConfig::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("ZCA"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs `config` again into `parts`, stopped after its first batch (mid-epoch), resumes it, and
/// compares the model, the metrics and the summary with the uninterrupted run in `whole`
/// (timings aside).
fn interrupted_patches_run_resumes_bit_for_bit(
    config: &helmholtz_experiments::sparse::SparseConfig,
    whole: &std::path::Path,
    parts: &std::path::Path,
) {
    use helmholtz_experiments::sparse::{resume_patches, run_patches_until};
    use std::sync::atomic::AtomicBool;
    let err = run_patches_until(config, 0, parts, |_, _, _| {}, &AtomicBool::new(true))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("--resume"), "{err}");
    resume_patches(parts, |_, _, _| {}, &AtomicBool::new(false)).unwrap();
    let read = |dir: &std::path::Path, file: &str| std::fs::read(dir.join(file)).unwrap();
    assert_eq!(
        read(parts, "model.safetensors"),
        read(whole, "model.safetensors")
    );
    let without_times = |dir: &std::path::Path, file: &str| -> String {
        let text = String::from_utf8(read(dir, file)).unwrap();
        text.lines()
            .map(|line| {
                let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
                if let Some(epochs) = value.get_mut("epochs").and_then(|e| e.as_array_mut()) {
                    epochs.iter_mut().for_each(|e| e["epoch_s"] = 0.into());
                }
                value["epoch_s"] = 0.into();
                value.to_string()
            })
            .collect()
    };
    assert_eq!(
        without_times(parts, "metrics.jsonl"),
        without_times(whole, "metrics.jsonl")
    );
    let summary = |dir: &std::path::Path| -> serde_json::Value {
        let mut value: serde_json::Value =
            serde_json::from_slice(&read(dir, "summary.json")).unwrap();
        for e in value["epochs"].as_array_mut().unwrap() {
            e["epoch_s"] = 0.into();
        }
        value
    };
    assert_eq!(summary(parts), summary(whole));
}
