// SPDX-FileCopyrightText: Copyright 2026 Stacklok, Inc.
// SPDX-License-Identifier: Apache-2.0

package state

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// decodeFast decodes the state files every writer produces (released
// go-microvm's and this package's) without encoding/json, whose reflection
// is the largest CPU cost of a scan after its syscalls. It accepts only a
// plain subset of JSON: one object whose keys are the exact names of the
// State and Identity fields, each at most once; strings without escapes
// holding valid UTF-8; integers without fraction or exponent that fit
// their field; true and false; times as time.Time decodes them. On
// anything else (an escape, an unknown or differently cased key, null, a
// duplicate, a number out of range, a syntax error) it returns false and
// leaves Parse to encoding/json, so what is accepted, the errors and the
// result are encoding/json's in every case; FuzzParse checks that the two
// agree wherever decodeFast answers.
func decodeFast(data []byte, s *State) bool {
	p := fastParser{data: data}
	seen := 0
	ok := p.object(func(key []byte) bool {
		bit, ok := stateKeys(key)
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		switch bit {
		case keyVersion:
			return p.int(&s.Version)
		case keyActive:
			return p.bool(&s.Active)
		case keyName:
			return p.string(&s.Name)
		case keyImage:
			return p.string(&s.Image)
		case keyCPUs:
			return p.uint32(&s.CPUs)
		case keyMemoryMB:
			return p.uint32(&s.MemoryMB)
		case keyPID:
			return p.int(&s.PID)
		case keyPIDStartTime:
			return p.time(&s.PIDStartTime)
		case keyCreatedAt:
			return p.time(&s.CreatedAt)
		case keyLeased:
			return p.bool(&s.Leased)
		case keyRunner:
			s.Runner = &Identity{}
			return p.identity(s.Runner)
		}
		return false
	})
	if !ok {
		return false
	}
	p.space()
	return p.i == len(p.data)
}

// The keys decodeFast knows, as bits of a set of keys seen.
const (
	keyVersion = 1 << iota
	keyActive
	keyName
	keyImage
	keyCPUs
	keyMemoryMB
	keyPID
	keyPIDStartTime
	keyCreatedAt
	keyLeased
	keyRunner
)

func stateKeys(key []byte) (int, bool) {
	switch string(key) {
	case "version":
		return keyVersion, true
	case "active":
		return keyActive, true
	case "name":
		return keyName, true
	case "image":
		return keyImage, true
	case "cpus":
		return keyCPUs, true
	case "memory_mb":
		return keyMemoryMB, true
	case "pid":
		return keyPID, true
	case "pid_start_time":
		return keyPIDStartTime, true
	case "created_at":
		return keyCreatedAt, true
	case "leased":
		return keyLeased, true
	case "runner":
		return keyRunner, true
	}
	return 0, false
}

// fastParser is decodeFast's cursor over the bytes.
type fastParser struct {
	data []byte
	i    int
}

func (p *fastParser) space() {
	for p.i < len(p.data) {
		switch p.data[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// object parses an object, calling value for each key with the cursor on
// the key's value.
func (p *fastParser) object(value func(key []byte) bool) bool {
	p.space()
	if !p.eat('{') {
		return false
	}
	p.space()
	if p.eat('}') {
		return true
	}
	for {
		p.space()
		key, ok := p.plainString()
		if !ok {
			return false
		}
		p.space()
		if !p.eat(':') {
			return false
		}
		p.space()
		if !value(key) {
			return false
		}
		p.space()
		if p.eat('}') {
			return true
		}
		if !p.eat(',') {
			return false
		}
	}
}

func (p *fastParser) identity(id *Identity) bool {
	seen := 0
	return p.object(func(key []byte) bool {
		var bit int
		switch string(key) {
		case "start_time":
			bit = 1
		case "boot_id":
			bit = 2
		case "executable":
			bit = 4
		case "pid_namespace":
			bit = 8
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		switch bit {
		case 1:
			return p.uint64(&id.StartTime)
		case 2:
			return p.string(&id.BootID)
		case 4:
			return p.string(&id.Executable)
		default:
			return p.uint64(&id.PIDNamespace)
		}
	})
}

func (p *fastParser) eat(c byte) bool {
	if p.i < len(p.data) && p.data[p.i] == c {
		p.i++
		return true
	}
	return false
}

// plainString returns the bytes of a string without escapes or control
// characters that is valid UTF-8, without its quotes.
func (p *fastParser) plainString() ([]byte, bool) {
	if !p.eat('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.data) {
		c := p.data[p.i]
		switch {
		case c == '"':
			s := p.data[start:p.i]
			p.i++
			return s, utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, false
		}
		p.i++
	}
	return nil, false
}

func (p *fastParser) string(dst *string) bool {
	s, ok := p.plainString()
	if ok {
		*dst = string(s)
	}
	return ok
}

func (p *fastParser) time(dst *time.Time) bool {
	start := p.i
	if _, ok := p.plainString(); !ok {
		return false
	}
	// time.Time's own decoding, on the quoted value, as encoding/json
	// calls it.
	return dst.UnmarshalJSON(p.data[start:p.i]) == nil
}

func (p *fastParser) bool(dst *bool) bool {
	rest := p.data[p.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		*dst = true
		p.i += 4
	case len(rest) >= 5 && string(rest[:5]) == "false":
		*dst = false
		p.i += 5
	default:
		return false
	}
	return p.delimited()
}

// delimited reports whether a literal or number ends where the cursor is:
// "truex" or "12a" is not JSON.
func (p *fastParser) delimited() bool {
	if p.i == len(p.data) {
		return true
	}
	switch p.data[p.i] {
	case ' ', '\t', '\n', '\r', ',', '}':
		return true
	}
	return false
}

// integer returns the digits of an integer (with its sign): -?(0|[1-9][0-9]*).
func (p *fastParser) integer(signed bool) ([]byte, bool) {
	start := p.i
	if signed && p.i < len(p.data) && p.data[p.i] == '-' {
		p.i++
	}
	digits := p.i
	for p.i < len(p.data) && p.data[p.i] >= '0' && p.data[p.i] <= '9' {
		p.i++
	}
	n := p.i - digits
	if n == 0 || (n > 1 && p.data[digits] == '0') || !p.delimited() {
		return nil, false
	}
	return p.data[start:p.i], true
}

func (p *fastParser) int(dst *int) bool {
	b, ok := p.integer(true)
	if !ok {
		return false
	}
	v, err := strconv.ParseInt(string(b), 10, strconv.IntSize)
	if err != nil {
		return false
	}
	*dst = int(v)
	return true
}

// unsigned parses an unsigned integer that fits in bits bits.
func (p *fastParser) unsigned(bits int) (uint64, bool) {
	b, ok := p.integer(false)
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b), 10, bits)
	return v, err == nil
}

func (p *fastParser) uint32(dst *uint32) bool {
	v, ok := p.unsigned(32)
	if ok {
		*dst = uint32(v)
	}
	return ok
}

func (p *fastParser) uint64(dst *uint64) bool {
	v, ok := p.unsigned(64)
	if ok {
		*dst = v
	}
	return ok
}
