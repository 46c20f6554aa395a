package filter

// newDetectStage builds this stage; not written yet.
func newDetectStage(o *Options) (Stage, error) { return nil, nil }
