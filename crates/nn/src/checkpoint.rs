//! Training checkpoints: the model, the optimiser state and the number of finished
//! epochs, in one safetensors file written atomically (temporary file, then rename), so
//! a killed run always finds the last complete checkpoint.
//!
//! No random-generator state is stored: every random stream of a run (sample order,
//! dropout masks, augmentation) is derived from the run's seed and the epoch number, so
//! resuming at an epoch boundary reproduces the uninterrupted run bit for bit. A trainer
//! that checkpoints mid-epoch stores its position in the metadata (`rcc_train` stores
//! the step and the number of words its epoch stream has drawn).

use crate::error::{file_err, Error, Result};
use crate::model::Model;
use crate::optim::Optimizer;
use crate::safetensors::SafeTensors;
use std::path::Path;

/// Writes the checkpoint of `model` and `opt` after `epochs_done` epochs. `metadata` is
/// stored beside (e.g. the run's resolved configuration).
pub fn save(
    path: &Path,
    model: &Model,
    opt: &Optimizer,
    epochs_done: usize,
    metadata: &[(&str, &str)],
) -> Result<()> {
    save_with(path, model, opt, epochs_done, metadata, &[])
}

/// As [`save`], plus `extra` named f32 state (a compression method's, e.g. ADMM's Z and
/// U), stored as `extra.NAME` and read back with [`extra`].
pub fn save_with(
    path: &Path,
    model: &Model,
    opt: &Optimizer,
    epochs_done: usize,
    metadata: &[(&str, &str)],
    extra: &[(&str, &[f32])],
) -> Result<()> {
    let mut st = model.to_safetensors(metadata)?;
    for (name, v) in extra {
        st.push_f32(&format!("extra.{name}"), &[v.len()], v.to_vec())?;
    }
    for (name, state) in opt.state() {
        st.push_f32(&format!("optimizer.{name}"), &[state.len()], state.to_vec())?;
    }
    st.metadata
        .insert("format".into(), "rcc-checkpoint-v1".into());
    st.metadata
        .insert("epochs_done".into(), epochs_done.to_string());
    if let Optimizer::Adam(a) = opt {
        st.metadata.insert("adam_t".into(), a.t.to_string());
    }
    st.write(path)
}

/// Restores `model` and `opt` (already built with the run's arch and optimiser kind)
/// from a checkpoint; returns the number of finished epochs.
pub fn load(path: &Path, model: &mut Model, opt: &mut Optimizer) -> Result<usize> {
    restore(&SafeTensors::read(path)?, path, model, opt)
}

/// [`load`] of a checkpoint already parsed (`path` only names it in errors). Every
/// field is checked before anything is written, so on error `model` and `opt` are
/// unchanged.
pub fn restore(
    st: &SafeTensors,
    path: &Path,
    model: &mut Model,
    opt: &mut Optimizer,
) -> Result<usize> {
    if st.metadata.get("format").map(String::as_str) != Some("rcc-checkpoint-v1") {
        return file_err(
            path,
            "__metadata__.format",
            "expected an rcc checkpoint (rcc-checkpoint-v1)",
        );
    }
    let loaded = Model::from_safetensors(st, path, model.arch(), false)?;
    let n = model.params.len();
    let mut states = vec![];
    for (name, _) in opt.state() {
        states.push(st.expect_f32(&format!("optimizer.{name}"), &[n], path)?);
    }
    let adam_t = match opt {
        Optimizer::Adam(_) => Some(meta_num(st, path, "adam_t")?),
        Optimizer::Sgd(_) => None,
    };
    let epochs_done = meta_num(st, path, "epochs_done")?;
    for ((_, state), data) in opt.state_mut().into_iter().zip(states) {
        state.clear();
        state.extend_from_slice(data);
    }
    if let (Optimizer::Adam(a), Some(t)) = (opt, adam_t) {
        a.t = t;
    }
    *model = loaded;
    Ok(epochs_done)
}

/// The `extra.NAME` state of a checkpoint written by [`save_with`], if present, borrowed
/// from the parsed file (`path` only names it in errors): a resume reads the file once
/// for the model ([`restore`]), the optimiser, its metadata and every extra, and copies
/// an extra straight into the state it restores.
pub fn extra<'a>(st: &'a SafeTensors, path: &Path, name: &str) -> Result<Option<&'a [f32]>> {
    let key = format!("extra.{name}");
    match st.get(&key) {
        None => Ok(None),
        // save_with writes every extra as one f32 vector; its length is the caller's to check.
        Some(e) => Ok(Some(st.expect_f32(&key, &e.shape, path)?)),
    }
}

fn meta_num<T: std::str::FromStr>(st: &SafeTensors, path: &Path, key: &str) -> Result<T> {
    let v = st.metadata.get(key).ok_or_else(|| Error::File {
        path: path.into(),
        field: format!("__metadata__.{key}"),
        problem: "missing".into(),
    })?;
    v.parse().map_err(|_| Error::File {
        path: path.into(),
        field: format!("__metadata__.{key}"),
        problem: format!("{v:?} is not a number"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::{Adam, Sgd};
    use crate::Arch;

    /// A checkpoint whose last field is bad (here `epochs_done`) is refused before
    /// anything is written: the trainer then falls back to the previous checkpoint with
    /// a model and optimiser that hold no part of the bad one.
    #[test]
    fn failed_restore_changes_nothing() {
        let m = Model::new(Arch::LenetAdv(1), 3);
        let n = m.params.len();
        let mut opt = Optimizer::Adam(Adam::new(n, 0.9, 0.999, 1e-8, 0.0).unwrap());
        opt.step(&mut m.params.clone(), &vec![0.5; n], 0.1);
        let mut st = m.to_safetensors(&[]).unwrap();
        for (name, state) in opt.state() {
            st.push_f32(&format!("optimizer.{name}"), &[n], state.to_vec())
                .unwrap();
        }
        st.metadata
            .insert("format".into(), "rcc-checkpoint-v1".into());
        st.metadata.insert("adam_t".into(), "1".into());
        st.metadata.insert("epochs_done".into(), "x".into());
        let mut m2 = Model::new(Arch::LenetAdv(1), 4);
        let mut opt2 = Optimizer::Adam(Adam::new(n, 0.9, 0.999, 1e-8, 0.0).unwrap());
        let err = restore(&st, Path::new("c"), &mut m2, &mut opt2).unwrap_err();
        assert!(err.to_string().contains("epochs_done"), "{err}");
        assert_eq!(m2.params, Model::new(Arch::LenetAdv(1), 4).params);
        assert!(opt2
            .state()
            .iter()
            .all(|(_, s)| s.iter().all(|&v| v == 0.0)));
        let Optimizer::Adam(a) = &opt2 else {
            unreachable!()
        };
        assert_eq!(a.t, 0);
    }

    #[test]
    fn round_trip_restores_model_and_optimiser() {
        let dir = std::env::temp_dir().join(format!("rcc-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("checkpoint.safetensors");
        let mut m = Model::new(Arch::Vgg16(1), 3);
        m.buffers
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = i as f32);
        for mut opt in [
            Optimizer::Sgd(Sgd::new(m.params.len(), 0.9, false, 0.0).unwrap()),
            Optimizer::Adam(Adam::new(m.params.len(), 0.9, 0.999, 1e-8, 0.0).unwrap()),
        ] {
            let grads: Vec<f32> = (0..m.params.len())
                .map(|i| (i % 13) as f32 * 0.01)
                .collect();
            opt.step(&mut m.params, &grads, 0.1);
            save(&path, &m, &opt, 7, &[("note", "x")]).unwrap();
            let mut m2 = Model::new(Arch::Vgg16(1), 99);
            let mut opt2 = match &opt {
                Optimizer::Sgd(_) => {
                    Optimizer::Sgd(Sgd::new(m.params.len(), 0.9, false, 0.0).unwrap())
                }
                Optimizer::Adam(_) => {
                    Optimizer::Adam(Adam::new(m.params.len(), 0.9, 0.999, 1e-8, 0.0).unwrap())
                }
            };
            assert_eq!(load(&path, &mut m2, &mut opt2).unwrap(), 7);
            assert_eq!((&m2.params, &m2.buffers), (&m.params, &m.buffers));
            assert_eq!(opt2, opt);
        }
        // A model file is not a checkpoint.
        m.save(&path, &[]).unwrap();
        let mut opt = Optimizer::Sgd(Sgd::new(m.params.len(), 0.9, false, 0.0).unwrap());
        assert!(load(&path, &mut m.clone(), &mut opt)
            .unwrap_err()
            .to_string()
            .contains("rcc-checkpoint-v1"));
    }
}
