//! The pipeline's stages, named once: the order requests go through them, the `stage` label of
//! the metrics, the `stage` field of audit records and explanations.

/// A stage of the pipeline, in request order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Admission,
    Normalize,
    Tenant,
    Route,
    Identity,
    Authorize,
    RateLimit,
    Quota,
    Forward,
}

impl Stage {
    /// Every stage, in request order (`ALL[s.index()] == s`).
    pub const ALL: [Stage; 9] = [
        Stage::Admission,
        Stage::Normalize,
        Stage::Tenant,
        Stage::Route,
        Stage::Identity,
        Stage::Authorize,
        Stage::RateLimit,
        Stage::Quota,
        Stage::Forward,
    ];

    /// The name metrics, records and explanations use.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Admission => "admission",
            Stage::Normalize => "normalize",
            Stage::Tenant => "tenant",
            Stage::Route => "route",
            Stage::Identity => "identity",
            Stage::Authorize => "authorize",
            Stage::RateLimit => "ratelimit",
            Stage::Quota => "quota",
            Stage::Forward => "forward",
        }
    }

    /// Its place in request order.
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::Stage;

    #[test]
    fn every_stage_is_at_its_own_index_with_its_own_name() {
        for (i, stage) in Stage::ALL.iter().enumerate() {
            assert_eq!(stage.index(), i);
        }
        let mut names: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
        names.dedup();
        assert_eq!(names.len(), Stage::ALL.len());
    }
}
