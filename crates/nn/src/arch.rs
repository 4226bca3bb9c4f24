//! Architecture strings, exactly as ../shared/reference/README.md defines them:
//! `lenet_adv:W` (W = 1..16), `lenet5`, `mlp`, `vgg16:W`.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// Ye et al.'s width-scalable LeNet (the Madry MNIST net at W = 16).
    LenetAdv(usize),
    /// The Caffe LeNet-5 (conv 20, conv 50, fc 500).
    Lenet5,
    /// LeNet-300-100.
    Mlp,
    /// Width-scalable VGG-16 with batch norm, for 3x32x32 inputs (channels x W/16).
    Vgg16(usize),
}

impl Arch {
    /// Input shape [C, H, W] of one example.
    pub fn input_shape(&self) -> [usize; 3] {
        match self {
            Arch::Vgg16(_) => [3, 32, 32],
            _ => [1, 28, 28],
        }
    }

    pub fn num_classes(&self) -> usize {
        10
    }
}

impl FromStr for Arch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Arch> {
        let width = |w: &str, max: usize| -> Result<usize> {
            match w.parse::<usize>() {
                Ok(w) if (1..=max).contains(&w) => Ok(w),
                _ => Err(Error::Arch(format!(
                    "in {s:?}: width must be an integer from 1 to {max}"
                ))),
            }
        };
        match s.split_once(':') {
            None if s == "lenet5" => Ok(Arch::Lenet5),
            None if s == "mlp" => Ok(Arch::Mlp),
            Some(("lenet_adv", w)) => Ok(Arch::LenetAdv(width(w, 16)?)),
            Some(("vgg16", w)) => Ok(Arch::Vgg16(width(w, 64)?)),
            _ => Err(Error::Arch(format!(
                "unknown architecture {s:?}; expected lenet_adv:W (W = 1..16), lenet5, mlp or vgg16:W"
            ))),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arch::LenetAdv(w) => write!(f, "lenet_adv:{w}"),
            Arch::Lenet5 => write!(f, "lenet5"),
            Arch::Mlp => write!(f, "mlp"),
            Arch::Vgg16(w) => write!(f, "vgg16:{w}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Arch;

    #[test]
    fn parse_and_display_round_trip() {
        for s in [
            "lenet_adv:1",
            "lenet_adv:16",
            "lenet5",
            "mlp",
            "vgg16:1",
            "vgg16:16",
        ] {
            assert_eq!(s.parse::<Arch>().unwrap().to_string(), s);
        }
        for bad in [
            "lenet_adv:0",
            "lenet_adv:17",
            "lenet_adv:x",
            "vgg16",
            "resnet",
            "lenet5:2",
            "",
        ] {
            assert!(bad.parse::<Arch>().is_err(), "{bad}");
        }
    }
}
