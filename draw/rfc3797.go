package draw

import (
	"crypto/md5"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// RFC 3797 limits, from its reference code: a two-byte selection index, and
// a pool of at most 2^16−1.
const (
	RFC3797MaxPool = 65535
)

// ErrRFC3797 reports invalid input to RFC3797 or RFC3797Key.
var ErrRFC3797 = errors.New("draw: rfc3797")

// RFC3797Key builds the key string of RFC 3797 section 4 from the published
// values of each random source, in the order given. Each source is the
// published text of one source: one or more non-negative decimal integers
// separated by white space or commas (a lottery's numbers, "2 5 12 8 10").
// Its numbers are written with leading zeros suppressed, sorted into
// ascending numeric order, each followed by "."; each source ends with "/".
// The sources of the RFC's section 6 give "9319./2.5.8.10.12./9.18.26.34.41.45./".
//
// The RFC's reference code also takes sources of decimal fractions ("float");
// this implementation takes integers only, and says so rather than guessing.
func RFC3797Key(sources []string) (string, error) {
	if len(sources) == 0 {
		return "", fmt.Errorf("%w: no random sources", ErrRFC3797)
	}
	var key strings.Builder
	for i, src := range sources {
		fields := strings.FieldsFunc(src, func(r rune) bool {
			return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
		})
		if len(fields) == 0 {
			return "", fmt.Errorf("%w: source %d is empty", ErrRFC3797, i+1)
		}
		nums := make([]string, len(fields))
		for k, f := range fields {
			for _, c := range f {
				if c < '0' || c > '9' {
					return "", fmt.Errorf("%w: source %d: %q is not a non-negative decimal integer", ErrRFC3797, i+1, f)
				}
			}
			n := strings.TrimLeft(f, "0")
			if n == "" {
				n = "0"
			}
			nums[k] = n
		}
		// Numeric order of canonical decimals: shorter first, then by digits.
		slices.SortFunc(nums, func(a, b string) int {
			if len(a) != len(b) {
				return len(a) - len(b)
			}
			return strings.Compare(a, b)
		})
		for _, n := range nums {
			key.WriteString(n)
			key.WriteByte('.')
		}
		key.WriteByte('/')
	}
	return key.String(), nil
}

// RFC3797 selects count of the poolSize members of a pool numbered 1 to
// poolSize, by the method of RFC 3797 section 4 and its reference code, from
// the published values of the random sources (see RFC3797Key). It returns the
// selected pool positions (1-based) in selection order.
//
// For selection i = 0, 1, …: the MD5 digest of (i as two bytes, big-endian)
// || key || (i as two bytes, big-endian) is read as a 128-bit big-endian
// unsigned integer; its remainder when divided by the number of members not
// yet selected, plus one, says which of them (counting in pool order) is
// selected next. RFC 3797 uses MD5, and so does this function: that is the
// algorithm that others can check by the RFC.
func RFC3797(sources []string, poolSize, count int) ([]int, error) {
	if poolSize < 1 || poolSize > RFC3797MaxPool {
		return nil, fmt.Errorf("%w: pool size %d is not between 1 and %d", ErrRFC3797, poolSize, RFC3797MaxPool)
	}
	if count < 1 || count > poolSize {
		return nil, fmt.Errorf("%w: cannot select %d of a pool of %d", ErrRFC3797, count, poolSize)
	}
	key, err := RFC3797Key(sources)
	if err != nil {
		return nil, err
	}
	remaining := make([]int, poolSize)
	for i := range remaining {
		remaining[i] = i + 1
	}
	out := make([]int, 0, count)
	for i := 0; i < count; i++ {
		d := rfc3797Digest(key, i)
		k := remainder(d, len(remaining))
		out = append(out, remaining[k])
		remaining = slices.Delete(remaining, k, k+1)
	}
	return out, nil
}

// rfc3797Digest is MD5(u16be(i) || key || u16be(i)).
func rfc3797Digest(key string, i int) [16]byte {
	b := make([]byte, 0, len(key)+4)
	b = append(b, byte(i>>8), byte(i))
	b = append(b, key...)
	b = append(b, byte(i>>8), byte(i))
	return md5.Sum(b)
}

// remainder returns d, read as a big-endian integer, modulo m (m ≤ 65535),
// as the reference code's longremainder does.
func remainder(d [16]byte, m int) int {
	r := 0
	for _, c := range d {
		r = (r<<8 + int(c)) % m
	}
	return r
}
