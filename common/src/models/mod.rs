//! Models the stack can load: the catalog of known ones (data, in
//! `models-catalog.json`), digests, mirrors, and the list of files a stack
//! wants (the plan). One definition for both sides: the operator resolves a
//! stack's model list into a plan and hands it to the loader Job, which is
//! the voice image's `models fetch` and reads the same types.

mod catalog;
mod digest;
mod image_ref;
mod plan;
mod report;

pub use catalog::{
    Catalog, CatalogError, CatalogModel, ModelFile, ModelKind, SttProfileLabel, catalog,
};
pub use digest::{Digest, DigestAlgorithm, DigestError, Hasher};
pub use image_ref::{ImageRef, ImageRefError};
pub use plan::{
    OciSource, PlanError, PlannedFile, PlannedModel, Unpack, mirrored_url, pull_secret_auth_file,
    valid_cache_path,
};
pub use report::{LoaderReport, ModelOutcome, OutcomePhase, PERMANENT_FAILURE_EXIT};
