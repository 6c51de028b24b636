//! `voicechat-voice models fetch`: fills a models cache (a folder, in the
//! cluster the models PVC) with the files of a plan, as the operator's
//! loader Job. Downloads resume, are checked against the publisher's
//! digest, and reach their final name only whole (`fetch`); archives are
//! unpacked the same way (`unpack`), and files in OCI images pulled from
//! their registry (`oci`). What each model came to is written as
//! JSON (`report`), where the operator reads it: the Job pod's termination
//! message.

mod cli;
mod fetch;
mod oci;
mod unpack;

pub use cli::run;
pub use fetch::{FetchError, FetchOptions, Fetched, fetch_file};
