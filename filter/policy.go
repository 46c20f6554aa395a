package filter

// newPolicyStage builds this stage; not written yet.
func newPolicyStage(o *Options) (Stage, error) { return nil, nil }
