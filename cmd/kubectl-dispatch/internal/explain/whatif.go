package explain

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/kubedispatch/kubedispatch/api/v1alpha1"
)

// WhatIf is a set of changed settings, as given to --what-if: key=value pairs separated by commas.
type WhatIf struct {
	// Settings are the pairs in the order given.
	Settings []Setting
}

// Setting is one key=value pair of a WhatIf.
type Setting struct {
	Key, Value string
}

// String renders the pairs as they were given.
func (w WhatIf) String() string {
	parts := make([]string, len(w.Settings))
	for i, s := range w.Settings {
		parts[i] = s.Key + "=" + s.Value
	}
	return strings.Join(parts, ",")
}

// whatIfKeys are the settings --what-if can change, each applied to a copy of the spec (or its metadata).
var whatIfKeys = map[string]func(sj *v1alpha1.ScaledJob, v string) error{
	"strategy": func(sj *v1alpha1.ScaledJob, v string) error {
		sj.Spec.ScalingStrategy.Strategy = v
		return nil
	},
	"multipleScalersCalculation": func(sj *v1alpha1.ScaledJob, v string) error {
		sj.Spec.ScalingStrategy.MultipleScalersCalculation = v
		return nil
	},
	"maxReplicaCount": func(sj *v1alpha1.ScaledJob, v string) error {
		return setInt32(&sj.Spec.MaxReplicaCount, v)
	},
	"minReplicaCount": func(sj *v1alpha1.ScaledJob, v string) error {
		return setInt32(&sj.Spec.MinReplicaCount, v)
	},
	"customScalingQueueLengthDeduction": func(sj *v1alpha1.ScaledJob, v string) error {
		return setInt32(&sj.Spec.ScalingStrategy.CustomScalingQueueLengthDeduction, v)
	},
	"customScalingRunningJobPercentage": func(sj *v1alpha1.ScaledJob, v string) error {
		sj.Spec.ScalingStrategy.CustomScalingRunningJobPercentage = v
		return nil
	},
	"pendingPodConditions": func(sj *v1alpha1.ScaledJob, v string) error {
		sj.Spec.ScalingStrategy.PendingPodConditions = nil
		if v != "" {
			sj.Spec.ScalingStrategy.PendingPodConditions = strings.Split(v, ";")
		}
		return nil
	},
	"paused": func(sj *v1alpha1.ScaledJob, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		ann := map[string]string{}
		for k, val := range sj.Annotations {
			ann[k] = val
		}
		delete(ann, v1alpha1.AnnotationPaused)
		if b {
			ann[v1alpha1.AnnotationPaused] = "true"
		}
		sj.Annotations = ann
		return nil
	},
}

func setInt32(dst **int32, v string) error {
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return fmt.Errorf("%q is not a 32-bit integer", v)
	}
	i := int32(n)
	*dst = &i
	return nil
}

// ParseWhatIf parses "key=value,key=value". pendingPodConditions takes a ';'-separated list.
func ParseWhatIf(s string) (WhatIf, error) {
	var w WhatIf
	for _, pair := range strings.Split(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return WhatIf{}, fmt.Errorf("parsing --what-if %q: %q is not key=value", s, pair)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if _, known := whatIfKeys[k]; !known {
			return WhatIf{}, fmt.Errorf("parsing --what-if %q: unknown setting %q (known: %s)", s, k, strings.Join(knownKeys(), ", "))
		}
		w.Settings = append(w.Settings, Setting{Key: k, Value: v})
	}
	if len(w.Settings) == 0 {
		return WhatIf{}, fmt.Errorf("parsing --what-if %q: no settings", s)
	}
	return w, nil
}

func knownKeys() []string {
	keys := make([]string, 0, len(whatIfKeys))
	for k := range whatIfKeys {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Apply returns a copy of sj with the settings changed; sj is not modified.
func (w WhatIf) Apply(sj *v1alpha1.ScaledJob) (*v1alpha1.ScaledJob, error) {
	out := sj.DeepCopy()
	for _, s := range w.Settings {
		if err := whatIfKeys[s.Key](out, s.Value); err != nil {
			return nil, fmt.Errorf("applying --what-if %s: %w", s.Key, err)
		}
	}
	return out, nil
}

// Comparison is an explanation of the current settings next to one with the what-if settings.
type Comparison struct {
	WhatIf  string      `json:"whatIf"`
	Current Explanation `json:"current"`
	Changed Explanation `json:"changed"`
}

// Compare explains in as it is and with w applied.
func Compare(in Input, w WhatIf) (Comparison, error) {
	changed, err := w.Apply(in.ScaledJob)
	if err != nil {
		return Comparison{}, err
	}
	cin := in
	cin.ScaledJob = changed
	return Comparison{WhatIf: w.String(), Current: Explain(in), Changed: Explain(cin)}, nil
}
