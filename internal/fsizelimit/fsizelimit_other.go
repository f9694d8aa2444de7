//go:build !unix

package fsizelimit

import "errors"

const supported = false

func apply(int64) error { return errors.New("fsizelimit: no file size limit on this system") }
