package httpsource

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/provenrand/entropy"
)

// The quota headers the source reads, first the common X- spelling, then
// the IETF draft's RateLimit-* fields.
var quotaHeaders = [...][3]string{
	{"X-Ratelimit-Remaining", "X-Ratelimit-Limit", "X-Ratelimit-Reset"},
	{"Ratelimit-Remaining", "Ratelimit-Limit", "Ratelimit-Reset"},
}

// resetEpoch: an X-RateLimit-Reset above this is a Unix time (GitHub's
// reading), below it a number of seconds from now (the IETF draft's).
const resetEpoch = 1 << 30

// Quota returns what the service last said is left of the key's
// allowance: X-RateLimit-Remaining, -Limit and -Reset (or RateLimit-*)
// headers of any answer, random.org-style requestsLeft and bitsLeft members
// of a JSON body, and a 402 answer (Exhausted, with its balance if the body
// gives one). ok is false until an answer had any of them. A Provider asks
// every source with this method for it: it shows it in Stats and paces its
// requests by it.
func (s *Source) Quota() (q entropy.Quota, ok bool) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return s.quota, s.quota.Known()
}

// noteQuota reads the quota figures of an answer's headers, and of its body
// when body is not nil, into the source's last quota. A 402 marks the quota
// exhausted; any other answer clears that mark unless its figures say none
// is left.
func (s *Source) noteQuota(status int, hdr http.Header, body []byte) {
	q, found := s.lastQuota()
	now := s.now()
	for _, names := range quotaHeaders {
		if v, ok := headerInt(hdr, names[0]); ok {
			q.RequestsRemaining, found = v, true
		}
		if v, ok := headerInt(hdr, names[1]); ok {
			q.RequestsLimit, found = v, true
		}
		if v, ok := headerInt(hdr, names[2]); ok {
			found = true
			if v > resetEpoch {
				q.Reset = time.Unix(v, 0)
			} else {
				q.Reset = now.Add(time.Duration(v) * time.Second)
			}
		}
	}
	if body != nil && bodyQuota(body, &q) {
		found = true
	}
	if status == http.StatusPaymentRequired {
		found = true
	}
	if !found {
		return
	}
	q.Exhausted = status == http.StatusPaymentRequired || q.RequestsRemaining == 0 || q.BytesRemaining == 0
	q.Updated = now
	s.qmu.Lock()
	s.quota = q
	s.qmu.Unlock()
}

// lastQuota returns the last quota, or one of unknown figures; found is
// false.
func (s *Source) lastQuota() (q entropy.Quota, found bool) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if !s.quota.Known() {
		return unknownQuota(), false
	}
	return s.quota, false
}

// headerInt reads the first integer of a header ("42", or "42, 100;w=60"
// in the IETF draft's list form), if the header is there and not negative.
func headerInt(hdr http.Header, name string) (int64, bool) {
	vs := hdr[name]
	if len(vs) == 0 {
		return 0, false
	}
	v := strings.TrimSpace(vs[0])
	if i := strings.IndexAny(v, ",;"); i >= 0 {
		v = strings.TrimSpace(v[:i])
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(v, 64)
		if ferr != nil || f != f || f < 0 || f > math.MaxInt64/2 {
			return 0, false
		}
		n = int64(math.Ceil(f))
	}
	if n < 0 {
		return 0, false
	}
	return n, true
}

// quotaMembers are the body members that may hold quota figures.
var quotaMembers = [][]byte{[]byte(`"bitsLeft"`), []byte(`"requestsLeft"`), []byte(`"balance"`), []byte(`"credits"`)}

// bodyQuota reads random.org's bitsLeft and requestsLeft (at the top of a
// JSON body or in its "result"), and a balance or credits, into q. It
// reports whether it found any.
func bodyQuota(body []byte, q *entropy.Quota) bool {
	has := false
	for _, m := range quotaMembers {
		if bytes.Contains(body, m) {
			has = true
			break
		}
	}
	if !has {
		return false
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return false
	}
	found := quotaObject(top, q)
	var result map[string]json.RawMessage
	if raw, ok := top["result"]; ok && json.Unmarshal(raw, &result) == nil {
		found = quotaObject(result, q) || found
	}
	return found
}

// quotaObject reads the quota members of one JSON object.
func quotaObject(m map[string]json.RawMessage, q *entropy.Quota) bool {
	num := func(key string) (float64, bool) {
		var f float64
		raw, ok := m[key]
		if !ok || json.Unmarshal(raw, &f) != nil || f < 0 || f > math.MaxInt64/2 {
			return 0, false
		}
		return f, true
	}
	found := false
	if f, ok := num("bitsLeft"); ok {
		q.BytesRemaining, found = int64(f)/8, true
	}
	if f, ok := num("requestsLeft"); ok {
		q.RequestsRemaining, found = int64(f), true
	}
	for _, key := range []string{"balance", "credits"} {
		if f, ok := num(key); ok {
			q.Balance, found = f, true
			break
		}
	}
	return found
}

// unknownQuota returns a Quota with every figure unknown (-1), to fill in.
func unknownQuota() entropy.Quota {
	return entropy.Quota{RequestsRemaining: -1, RequestsLimit: -1, BytesRemaining: -1, Balance: -1}
}
