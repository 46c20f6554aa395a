package filter

// newEnrichStage builds this stage; not written yet.
func newEnrichStage(o *Options) (Stage, error) { return nil, nil }
