//! The robust teacher a compression run distils from (method.md section 1), trained on
//! demand when none is given and cached by recipe.

use crate::run_dir::RunDir;
use crate::trainer::{train, Observer, RunData, Stop};
use crate::{Result, TrainConfig, QUICK_TEACHER_EPOCHS};
use std::path::{Path, PathBuf};

/// The folder of the teacher `cfg` needs under `teachers`:
/// `<dataset>-<arch>-<attack>-e<epochs>-s<seed>`, and the recipe it is trained with
/// ([`TrainConfig::teacher_recipe`] with [`QUICK_TEACHER_EPOCHS`]).
pub fn teacher_folder(cfg: &TrainConfig, teachers: &Path) -> (PathBuf, TrainConfig) {
    let tcfg = TrainConfig::teacher_recipe(cfg.dataset, cfg.arch, QUICK_TEACHER_EPOCHS, cfg.seed);
    let dir = teachers.join(format!(
        "{}-{}-{}-e{}-s{}",
        tcfg.dataset,
        tcfg.arch.to_string().replace(':', ""),
        tcfg.adv.to_string().replace(':', "_"),
        tcfg.epochs,
        tcfg.seed
    ));
    (dir, tcfg)
}

/// The model file of the robust teacher `cfg` needs: reused from `teachers` if a model
/// trained with the same recipe is there, else trained there (resumed if a previous
/// attempt was killed). `data_dir` is read only if the recipe's data differ from
/// `data` (a run with a validation split: the recipe trains on the whole training set).
pub fn cached_teacher(
    cfg: &TrainConfig,
    data: &RunData,
    data_dir: &Path,
    teachers: &Path,
    obs: &mut dyn Observer,
) -> Result<PathBuf> {
    let (dir, tcfg) = teacher_folder(cfg, teachers);
    let run = RunDir::new(&dir);
    let model = run.model();
    let same_recipe = || run.read_config().is_ok_and(|c| c == tcfg);
    if model.exists() && same_recipe() {
        obs.note(&format!("teacher: reusing {}", model.display()));
        return Ok(model);
    }
    // Two runs that need the same teacher: the second waits for the first to train it
    // (one process per run folder), then reuses it.
    if run.try_lock()?.is_none() {
        obs.note(&format!(
            "teacher: waiting for the process that holds {}",
            run.lock_file().display()
        ));
    }
    let _lock = run.lock()?;
    if model.exists() && same_recipe() {
        obs.note(&format!("teacher: reusing {}", model.display()));
        return Ok(model);
    }
    let own;
    let data = if (cfg.val, cfg.train_limit, cfg.test_limit)
        == (tcfg.val, tcfg.train_limit, tcfg.test_limit)
    {
        data
    } else {
        own = RunData::load(&tcfg, data_dir)?;
        &own
    };
    let resume = run.checkpoint().exists() && same_recipe();
    obs.note(&format!(
        "teacher: training a robust {} ({} epochs, {}) -> {}",
        tcfg.arch,
        tcfg.epochs,
        tcfg.adv,
        dir.display()
    ));
    let r = train(&tcfg, data, &run, resume, Stop::Never, obs)?;
    run.save_model(&tcfg, &r.model, r.epochs_done, r.test_acc)?;
    Ok(model)
}
