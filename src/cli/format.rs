//! How a listing is printed.

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum UsageFormat {
    Table,
    Json,
}
