package main

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"strconv"
)

// Every whole-number flag of the command (read -n; draw --pick, --of,
// --shuffle and --int; rfc3797 --pool and --count; --burst and
// --fleet-size; sim --seed, --balance and --burst) is read by parseWhole,
// under one rule: decimal digits, after a "-" for a negative value, and
// nothing else. Go's flag.Int would also take 0x10, 0o20, 0b10000 and
// 1_6, and read 010 as octal 8: a draw of "--of 010" that drew from 8
// numbers would be a different draw from the one its operator typed, so
// none of those forms is accepted anywhere, and a leading zero is refused
// rather than given either meaning. A bad value is a bad command line
// (exit status 2) that names the flag.

// errWholeSyntax is the rule, as a value that breaks it is told.
var errWholeSyntax = errors.New("want a whole number in decimal digits (no +, no 0x, 0o or 0b prefix, no leading 0, no _)")

// parseWhole reads s, the value of a whole-number flag, under the rule
// above, and returns its sign and magnitude. It checks the form only; the
// flag's type checks the range.
func parseWhole(s string) (neg bool, mag uint64, err error) {
	digits := s
	if len(digits) > 0 && digits[0] == '-' {
		neg, digits = true, digits[1:]
	}
	if digits == "" || (len(digits) > 1 && digits[0] == '0') {
		return false, 0, errWholeSyntax
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return false, 0, errWholeSyntax
		}
	}
	mag, err = strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return false, 0, fmt.Errorf("out of range: more than %d", uint64(math.MaxUint64))
	}
	if neg && mag == 0 {
		return false, 0, errWholeSyntax // "-0"
	}
	return neg, mag, nil
}

// wholeFlag is a whole-number flag.Value, read by parseWhole into the one
// variable it holds: an int, an int64 or a uint64.
type wholeFlag struct {
	i    *int
	i64  *int64
	u64  *uint64
	note string // if set, the flag's range, added to every error of Set
}

// Set reads s by parseWhole and checks that it fits the variable.
func (f *wholeFlag) Set(s string) error {
	err := f.set(s)
	if err != nil && f.note != "" {
		err = fmt.Errorf("%w; %s", err, f.note)
	}
	return err
}

// set is Set without the note.
func (f *wholeFlag) set(s string) error {
	neg, mag, err := parseWhole(s)
	if err != nil {
		return err
	}
	switch {
	case f.u64 != nil:
		if neg {
			return errors.New("must not be negative")
		}
		*f.u64 = mag
		return nil
	case f.i64 != nil:
		v, err := signed(neg, mag, math.MinInt64, math.MaxInt64)
		if err == nil {
			*f.i64 = v
		}
		return err
	default:
		v, err := signed(neg, mag, math.MinInt, math.MaxInt)
		if err == nil {
			*f.i = int(v)
		}
		return err
	}
}

// signed is the value of sign neg and magnitude mag, if it is in [lo, hi].
func signed(neg bool, mag uint64, lo, hi int64) (int64, error) {
	switch {
	case !neg && mag <= uint64(hi):
		return int64(mag), nil
	case neg && mag <= uint64(-(lo+1))+1:
		return -int64(mag-1) - 1, nil
	}
	return 0, fmt.Errorf("out of range %d to %d", lo, hi)
}

// String returns the value in decimal; "0" for the zero wholeFlag, which
// flag.PrintDefaults makes to tell a default worth showing.
func (f *wholeFlag) String() string {
	switch {
	case f == nil:
		return "0"
	case f.u64 != nil:
		return strconv.FormatUint(*f.u64, 10)
	case f.i64 != nil:
		return strconv.FormatInt(*f.i64, 10)
	case f.i != nil:
		return strconv.Itoa(*f.i)
	}
	return "0"
}

// intFlag defines a whole-number flag of type int on fs, as fs.Int does,
// read by parseWhole.
func intFlag(fs *flag.FlagSet, name string, value int, usage string) *int {
	p := new(int)
	intVar(fs, p, name, value, usage)
	return p
}

// intVar defines a whole-number flag of type int on fs, as fs.IntVar
// does, read by parseWhole.
func intVar(fs *flag.FlagSet, p *int, name string, value int, usage string) {
	*p = value
	fs.Var(&wholeFlag{i: p}, name, usage)
}

// int64Flag defines a whole-number flag of type int64 on fs, as fs.Int64
// does, read by parseWhole.
func int64Flag(fs *flag.FlagSet, name string, value int64, usage string) *int64 {
	p := new(int64)
	*p = value
	fs.Var(&wholeFlag{i64: p}, name, usage)
	return p
}

// uint64Flag defines a whole-number flag of type uint64 on fs, as
// fs.Uint64 does, read by parseWhole; note, if not empty, states the
// flag's range in each of its errors.
func uint64Flag(fs *flag.FlagSet, name string, value uint64, usage, note string) *uint64 {
	p := new(uint64)
	*p = value
	fs.Var(&wholeFlag{u64: p, note: note}, name, usage)
	return p
}
