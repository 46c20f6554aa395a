package filter

// newRedactStage builds this stage; not written yet.
func newRedactStage(o *Options) (Stage, error) { return nil, nil }
