//! The official dataset files: where each goes under the data directory, where it is
//! published, its size and SHA-256, and for archives which members to extract.
//! `cargo xtask fetch-data` downloads (or copies from a mirror) and verifies them; the
//! readers of this crate then read them.

/// One file as published: where it goes, where it comes from, and its SHA-256.
#[derive(Clone, Copy, Debug)]
pub struct FileSpec<'a> {
    /// Path under the data directory. It is also the first place looked at in a mirror.
    pub rel: &'a str,
    /// Further places to look in a mirror, relative to the mirror.
    pub mirror_alt: &'a [&'a str],
    /// Official download locations, tried in order.
    pub urls: &'a [&'a str],
    /// SHA-256 of the official file, lower-case hex.
    pub sha256: &'a str,
    /// Size of the official file in bytes. A server that announces another size is not
    /// sending the official file, and a present file of another size is not it either.
    pub size: u64,
}

/// One member of an archive to extract, with its size in bytes.
#[derive(Clone, Copy, Debug)]
pub struct Member<'a> {
    pub name: &'a str,
    pub size: u64,
}

/// A `.tar.gz` to unpack after it has been verified. It is the dataset's only file.
#[derive(Clone, Copy, Debug)]
pub struct Extract<'a> {
    /// Directory of the members, both inside the archive and under the data directory.
    pub dir: &'a str,
    /// The members to extract. Other entries of the archive are ignored.
    pub members: &'a [Member<'a>],
}

/// A dataset: its `--dataset` name, its files and, for archives, what to extract.
#[derive(Clone, Copy, Debug)]
pub struct DatasetFiles<'a> {
    pub name: &'a str,
    pub files: &'a [FileSpec<'a>],
    pub extract: Option<Extract<'a>>,
}

// SHA-256 of the official MNIST and Fashion-MNIST files: ../shared/datasets/README.md, where
// each .gz is shown to be byte-identical to the official release. The sizes are from the
// same file.
//
// The SHA-256 of cifar-10-binary.tar.gz (170,052,171 bytes) is not published by its author,
// who gives only the md5 c32a1d4ab5d03f1284b67883e8d87530. The value below is the one pinned
// by independent downloaders of the official file. Among them are JuliaML/MLDatasets.jl
// (src/datasets/vision/cifar10.jl) and ankane/torchvision-ruby
// (lib/torchvision/datasets/cifar10.rb). Another project records the same SHA-256 after
// checking the official md5.
const MNIST: &[FileSpec<'static>] = &[
    FileSpec {
        rel: "mnist/train-images-idx3-ubyte.gz",
        mirror_alt: &[],
        urls: &[
            "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
            "http://yann.lecun.com/exdb/mnist/train-images-idx3-ubyte.gz",
        ],
        sha256: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        size: 9_912_422,
    },
    FileSpec {
        rel: "mnist/train-labels-idx1-ubyte.gz",
        mirror_alt: &[],
        urls: &[
            "https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
            "http://yann.lecun.com/exdb/mnist/train-labels-idx1-ubyte.gz",
        ],
        sha256: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        size: 28_881,
    },
    FileSpec {
        rel: "mnist/t10k-images-idx3-ubyte.gz",
        mirror_alt: &[],
        urls: &[
            "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz",
            "http://yann.lecun.com/exdb/mnist/t10k-images-idx3-ubyte.gz",
        ],
        sha256: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        size: 1_648_877,
    },
    FileSpec {
        rel: "mnist/t10k-labels-idx1-ubyte.gz",
        mirror_alt: &[],
        urls: &[
            "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
            "http://yann.lecun.com/exdb/mnist/t10k-labels-idx1-ubyte.gz",
        ],
        sha256: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        size: 4_542,
    },
];

const FASHION_MNIST: &[FileSpec<'static>] = &[
    FileSpec {
        rel: "fashion-mnist/train-images-idx3-ubyte.gz",
        mirror_alt: &[],
        urls: &[
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz",
        ],
        sha256: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        size: 26_421_880,
    },
    FileSpec {
        rel: "fashion-mnist/train-labels-idx1-ubyte.gz",
        mirror_alt: &[],
        urls: &[
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-labels-idx1-ubyte.gz",
        ],
        sha256: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        size: 29_515,
    },
    FileSpec {
        rel: "fashion-mnist/t10k-images-idx3-ubyte.gz",
        mirror_alt: &[],
        urls: &[
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-images-idx3-ubyte.gz",
        ],
        sha256: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        size: 4_422_102,
    },
    FileSpec {
        rel: "fashion-mnist/t10k-labels-idx1-ubyte.gz",
        mirror_alt: &[],
        urls: &[
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-labels-idx1-ubyte.gz",
        ],
        sha256: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        size: 5_148,
    },
];

const CIFAR10: &[FileSpec<'static>] = &[FileSpec {
    rel: "cifar-10-binary.tar.gz",
    mirror_alt: &["cifar-10/cifar-10-binary.tar.gz"],
    urls: &["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"],
    sha256: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
    size: 170_052_171,
}];

/// 10,000 records of 1 label byte + 3 x 32 x 32 pixel bytes.
const CIFAR_BATCH: u64 = 10_000 * 3_073;

/// Every dataset `cargo xtask fetch-data` knows, in the order `--dataset all` fetches them.
pub const DATASETS: &[DatasetFiles<'static>] = &[
    DatasetFiles {
        name: "mnist",
        files: MNIST,
        extract: None,
    },
    DatasetFiles {
        name: "fashion-mnist",
        files: FASHION_MNIST,
        extract: None,
    },
    DatasetFiles {
        name: "cifar10",
        files: CIFAR10,
        extract: Some(Extract {
            dir: "cifar-10-batches-bin",
            members: &[
                Member {
                    name: "data_batch_1.bin",
                    size: CIFAR_BATCH,
                },
                Member {
                    name: "data_batch_2.bin",
                    size: CIFAR_BATCH,
                },
                Member {
                    name: "data_batch_3.bin",
                    size: CIFAR_BATCH,
                },
                Member {
                    name: "data_batch_4.bin",
                    size: CIFAR_BATCH,
                },
                Member {
                    name: "data_batch_5.bin",
                    size: CIFAR_BATCH,
                },
                Member {
                    name: "test_batch.bin",
                    size: CIFAR_BATCH,
                },
                Member {
                    name: "batches.meta.txt",
                    size: 61,
                },
            ],
        }),
    },
];
