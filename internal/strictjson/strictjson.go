// Package strictjson holds the check that makes decoding a signed or
// digested JSON document exact. encoding/json matches member names without
// regard to case (and with Unicode case folding: "K", the Kelvin sign,
// matches "k") and lets a repeated member win over the first, so a document
// can show one value to a reader and decode to another. Keys checks every
// object of a document for both.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Keys reports an error if any object in the JSON document b has a member
// name that is not made of the characters a-z, 0-9 and '_' (the names of
// this module's JSON forms), or has the same member twice. It does not
// otherwise validate b; decode it as usual as well.
func Keys(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := value(dec); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the document")
	}
	return nil
}

// value consumes one JSON value from dec, checking the objects in it.
func value(dec *json.Decoder) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := make(map[string]bool)
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			name, ok := k.(string)
			if !ok {
				return fmt.Errorf("member name %v is not a string", k)
			}
			if !plain(name) {
				return fmt.Errorf("member name %q: only a-z, 0-9 and _ are used", name)
			}
			if seen[name] {
				return fmt.Errorf("member %q appears twice", name)
			}
			seen[name] = true
			if err := value(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token() // '}'
		return err
	case json.Delim('['):
		for dec.More() {
			if err := value(dec); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ']'
		return err
	}
	return nil
}

// plain reports whether name is made of a-z, 0-9 and '_' only.
func plain(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
