pub mod client;
pub mod fixture;
pub mod tollgate;
pub mod upstream;

pub use client::{collect, get, raw, send};
pub use tollgate::{Options, Tollgate};
pub use upstream::Upstream;
