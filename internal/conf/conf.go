// Package conf binds command-line flags to environment variables: every
// setting has a flag, an env var that sets the flag's default, and a working
// default of its own. It also lists the settings, so the README's table can
// be checked against the code.
package conf

import (
	"flag"
	"fmt"
	"strconv"
	"time"
)

// Setting describes one setting.
type Setting struct {
	Flag, Env, Default, Usage string
}

// Set is a flag set whose defaults come from the environment.
type Set struct {
	FS       *flag.FlagSet
	getenv   func(string) string
	Settings []Setting
	errs     []error
}

// New returns a set reading the environment through getenv.
func New(name string, getenv func(string) string) *Set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return &Set{FS: fs, getenv: getenv}
}

func (s *Set) env(name, env, def, usage string) string {
	s.Settings = append(s.Settings, Setting{Flag: name, Env: env, Default: def, Usage: usage})
	if v := s.getenv(env); v != "" {
		return v
	}
	return def
}

// String binds a string setting.
func (s *Set) String(p *string, name, env, def, usage string) {
	s.FS.StringVar(p, name, s.env(name, env, def, usage), usage+" (env "+env+")")
}

// Duration binds a Go-duration setting.
func (s *Set) Duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	v := s.env(name, env, def.String(), usage)
	d, err := time.ParseDuration(v)
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("%s=%q: not a Go duration like 10s or 1m30s", env, v))
		d = def
	}
	s.FS.DurationVar(p, name, d, usage+" (env "+env+")")
}

// Int binds an integer setting.
func (s *Set) Int(p *int, name, env string, def int, usage string) {
	v := s.env(name, env, strconv.Itoa(def), usage)
	n, err := strconv.Atoi(v)
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("%s=%q: not an integer", env, v))
		n = def
	}
	s.FS.IntVar(p, name, n, usage+" (env "+env+")")
}

// Bool binds a boolean setting.
func (s *Set) Bool(p *bool, name, env string, def bool, usage string) {
	v := s.env(name, env, strconv.FormatBool(def), usage)
	b, err := strconv.ParseBool(v)
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("%s=%q: not a boolean (true or false)", env, v))
		b = def
	}
	s.FS.BoolVar(p, name, b, usage+" (env "+env+")")
}

// Parse parses args; a bad env value is reported as an error here.
func (s *Set) Parse(args []string) error {
	if len(s.errs) > 0 {
		return s.errs[0]
	}
	return s.FS.Parse(args)
}
