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

/// Points from memory (`run_points_with_array`) and from their file (`run_points`) are the same
/// run; the opened model recovers the bars, encodes new points each on its own, denoises a
/// mosaic of bars images, and an EM run on points trains and resumes.
#[test]
fn points_runs_from_memory_and_file_agree_and_the_model_encodes_and_denoises() {
    use helmholtz::data::synthetic::{bars, match_fields};
    use helmholtz_experiments::sparse::denoise::{DenoiseConfig, denoise_image};
    use helmholtz_experiments::sparse::{
        SparseConfig, SparseRunModel, run_points, run_points_with_array,
    };
    use std::sync::atomic::AtomicBool;
    let dir = std::env::temp_dir().join(format!("helmholtz-points-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data = bars(3, 300, 0.1, 1);
    helmholtz::data::npy::write_npy(&dir.join("x.npy"), data.x.transpose(), false).unwrap();
    let text = "name = \"points\"\nseed = 1\n[data]\nsource = \"points\"\ntrain = \"x.npy\"\nn = 300\n[model]\nn_latents = 6\nposterior = \"full\"\n[train]\nhistory = 20\n";
    let config = SparseConfig::parse(text, &[], &dir.join("points.toml")).unwrap();
    let (model, outcome) = run_points(&config, 1, &dir.join("file"), |_, _| {}).unwrap();
    run_points_with_array(
        &config,
        &dir.join("memory"),
        data.x.as_ref(),
        |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    let read = |run: &str, name: &str| std::fs::read(dir.join(run).join(name)).unwrap();
    assert_eq!(
        read("memory", "model.safetensors"),
        read("file", "model.safetensors")
    );
    assert_eq!(
        read("memory", "metrics.jsonl"),
        read("file", "metrics.jsonl")
    );
    let scores = match_fields(model.dictionary().as_ref(), data.fields.as_ref());
    assert!(scores.iter().all(|&s| s >= 0.95), "{scores:?}");
    assert!(outcome.iterations > 10);

    std::fs::rename(dir.join("memory"), dir.join("moved")).unwrap();
    let opened = SparseRunModel::open(&dir.join("moved")).unwrap();
    assert!(
        (opened.sigma2 / 0.01 - 1.0).abs() < 0.3,
        "σ² = {}",
        opened.sigma2
    );
    let x = opened.whiten(data.x.subcols(0, 40)).unwrap();
    let (q, values) = opened.posteriors(x.as_ref()).unwrap();
    let (alone, value) = opened.posteriors(x.subcols(7, 1)).unwrap();
    assert_eq!((alone.mean(0), value[0]), (q.mean(7), values[7]));
    // The mean ELBO of training points under the learned prior is near the trained objective.
    let mean = values.iter().sum::<f64>() / 40.0;
    assert!(
        (mean - outcome.objective).abs() < 1.0,
        "{mean} vs {}",
        outcome.objective
    );

    // A 15×15 mosaic of 25 training images, denoised patch by patch (stride 3: the tiles).
    let mosaic: Vec<f64> = (0..225)
        .map(|i| {
            let (row, col) = (i / 15, i % 15);
            let tile = 5 * (row / 3) + col / 3;
            data.x[((row % 3) * 3 + col % 3, tile)]
        })
        .collect();
    let image = helmholtz::data::patches::GrayImage {
        path: "mosaic".into(),
        height: 15,
        width: 15,
        values: mosaic,
    };
    let denoise = DenoiseConfig {
        noise_sd: 0.3,
        stride: 3,
        ..DenoiseConfig::default()
    };
    let (psnr, images) = denoise_image(&opened, &image, &denoise).unwrap();
    assert_eq!(psnr.patches, 25);
    // Projecting 9 pixels on 6 atoms alone gains 10 log10(9/6) ≈ 1.8 dB; sparsity adds to it.
    assert!(psnr.posterior > psnr.noisy + 2.0, "{psnr:?}");
    assert_eq!(images.shape, (15, 15));

    // EM on the points: trains, checkpoints and refuses to resume a finished run.
    let em = SparseConfig::parse(
        &format!("{text}method = \"em\"\nbatch_size = 100\nepochs = 2\nmax_iters = 30\nlr = 0.5\n"),
        &[],
        &dir.join("points.toml"),
    )
    .unwrap();
    run_points_with_array(
        &em,
        &dir.join("em"),
        data.x.as_ref(),
        |_| {},
        &AtomicBool::new(false),
    )
    .unwrap();
    let epochs = helmholtz::run::read_metrics(&dir.join("em").join("metrics.jsonl")).unwrap();
    assert_eq!(epochs.len(), 2);
    assert!(
        epochs[0].get("atom_spread").is_some(),
        "3×3 images have a spread"
    );
    let err = helmholtz_experiments::sparse::resume_patches(
        &dir.join("em"),
        |_, _, _| {},
        &AtomicBool::new(false),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("has finished its 2 epochs"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
