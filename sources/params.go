package sources

import (
	"math"
	"strconv"
)

// Params looks up a trigger's parameters and parses them, returning a *ConfigError that names the field at fault.
//
// A key resolves from, in order: Metadata[key]; then Metadata[key+"FromEnv"], the name of a variable in Env (an
// error if Env has no such variable); then AuthParams[key]. An empty value counts as unset.
type Params struct {
	metadata map[string]string
	env      map[string]string
	auth     map[string]string
}

// Params returns the parameter lookup for c.
func (c Config) Params() Params {
	return Params{metadata: c.Metadata, env: c.Env, auth: c.AuthParams}
}

// MetadataField returns the field name of metadata key, e.g. "metadata.queueURL".
func MetadataField(key string) string {
	return "metadata." + key
}

// AuthField is the field that names errors in TriggerAuthentication parameters.
const AuthField = "authenticationRef"

// Lookup resolves key. It returns the value, the field it came from (for error messages) and whether it is set. The
// error is a *ConfigError when key+"FromEnv" names a variable missing from Env.
func (p Params) Lookup(key string) (value, field string, ok bool, err error) {
	if v := p.metadata[key]; v != "" {
		return v, MetadataField(key), true, nil
	}
	envKey := key + "FromEnv"
	if name := p.metadata[envKey]; name != "" {
		v, found := p.env[name]
		if !found {
			return "", MetadataField(envKey), false, ConfigErrorf(MetadataField(envKey),
				"environment variable %q is not set in the envSourceContainerName container", name)
		}
		if v != "" {
			return v, MetadataField(envKey), true, nil
		}
	}
	if v := p.auth[key]; v != "" {
		return v, AuthField, true, nil
	}
	return "", MetadataField(key), false, nil
}

// Has reports whether key is set anywhere Lookup would look, including a `<key>FromEnv` reference, even one that
// does not resolve.
func (p Params) Has(key string) bool {
	return p.metadata[key] != "" || p.metadata[key+"FromEnv"] != "" || p.auth[key] != ""
}

// Auth returns the TriggerAuthentication parameter key only (never metadata or env), or "" when unset.
func (p Params) Auth(key string) string {
	return p.auth[key]
}

// String returns key's value. A missing required key is a *ConfigError; a missing optional key yields "".
func (p Params) String(key string, required bool) (string, error) {
	v, _, ok, err := p.Lookup(key)
	if err != nil {
		return "", err
	}
	if !ok && required {
		return "", missing(key)
	}
	return v, nil
}

// Int64 returns key parsed as a base-10 int64, or def when it is unset.
func (p Params) Int64(key string, def int64) (int64, error) {
	v, field, ok, err := p.Lookup(key)
	if err != nil || !ok {
		return def, err
	}
	return parseInt64(key, field, v)
}

// RequiredInt64 returns key parsed as a base-10 int64; it is a *ConfigError when key is unset.
func (p Params) RequiredInt64(key string) (int64, error) {
	v, field, ok, err := p.Lookup(key)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, missing(key)
	}
	return parseInt64(key, field, v)
}

// Float returns key parsed as a finite float64, or def when it is unset.
func (p Params) Float(key string, def float64) (float64, error) {
	v, field, ok, err := p.Lookup(key)
	if err != nil || !ok {
		return def, err
	}
	f, perr := strconv.ParseFloat(v, 64)
	if perr != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, ConfigErrorf(field, "%s%s is not a number", prefix(key, field), QuoteValue(key, field, v))
	}
	return f, nil
}

// Bool returns key parsed by strconv.ParseBool ("true", "false", "1", "0", ...), or def when it is unset.
func (p Params) Bool(key string, def bool) (bool, error) {
	v, field, ok, err := p.Lookup(key)
	if err != nil || !ok {
		return def, err
	}
	b, perr := strconv.ParseBool(v)
	if perr != nil {
		return false, ConfigErrorf(field, "%s%s is not a boolean (use true or false)", prefix(key, field), QuoteValue(key, field, v))
	}
	return b, nil
}

func parseInt64(key, field, v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, ConfigErrorf(field, "%s%s is not an integer", prefix(key, field), QuoteValue(key, field, v))
	}
	return n, nil
}

// Value is Lookup for a key that must resolve when required: it returns the value and the field it came from, and
// a *ConfigError when a required key is unset.
func (p Params) Value(key string, required bool) (value, field string, err error) {
	v, field, ok, err := p.Lookup(key)
	if err != nil {
		return "", field, err
	}
	if !ok && required {
		return "", field, missing(key)
	}
	return v, field, nil
}

// HiddenValue is how an error detail refers to a value it must not show.
const HiddenValue = "the value (not shown: it does not come from literal trigger metadata, and may come from a Secret)"

// QuoteValue is how an error detail shows the value v of key that Lookup found in field: quoted when it was written
// literally in the trigger metadata (field is metadata.<key>), and HiddenValue otherwise. A value read through
// `<key>FromEnv` may be a Secret (the container's secretKeyRef), and so may a TriggerAuthentication parameter, so
// neither is ever quoted in a status, an event or a log line.
func QuoteValue(key, field, v string) string {
	if field == MetadataField(key) {
		return strconv.Quote(v)
	}
	return HiddenValue
}

// QuoteNumber is QuoteValue for a parsed number, e.g. in "must be at least 1, got 0".
func QuoteNumber[N int64 | float64](key, field string, n N) string {
	if field != MetadataField(key) {
		return HiddenValue
	}
	if i, ok := any(n).(int64); ok {
		return strconv.FormatInt(i, 10)
	}
	return strconv.FormatFloat(float64(n), 'g', -1, 64)
}

// prefix names the parameter in a detail when the field alone does not (values from the TriggerAuthentication).
func prefix(key, field string) string {
	if field == AuthField {
		return "parameter " + key + ": "
	}
	return ""
}

func missing(key string) *ConfigError {
	return ConfigErrorf(MetadataField(key), "is required (set %s, %sFromEnv or the authenticationRef parameter %s)", key, key, key)
}
