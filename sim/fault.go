package sim

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/provenrand/entropy/httpsource"
)

// FaultKind is a kind of misbehaviour the simulator can show on an entropy
// request.
type FaultKind int

// The fault kinds. Each applies to one GET /v1/entropy request.
const (
	// FaultNone: a healthy answer.
	FaultNone FaultKind = iota
	// FaultLatency: a healthy answer after Fault.Latency (default 100ms).
	FaultLatency
	// FaultStatus: an error answer with Fault.Status (default 503; it must
	// be a final HTTP status, 200..599), in Fault.Shape, with
	// Fault.RetryAfter as the Retry-After header.
	FaultStatus
	// FaultJobFailed: 202 queued, then the job fails with Fault.Code
	// (default "QuantumComputerError") on the first poll.
	FaultJobFailed
	// FaultDrop: the connection is closed without an answer.
	FaultDrop
	// FaultTruncate: a healthy body cut in half, its Content-Length whole.
	FaultTruncate
	// FaultMalformedJSON: a healthy body with its JSON broken.
	FaultMalformedJSON
	// FaultWrongLength: a correctly signed job with one byte more or less than asked.
	FaultWrongLength
	// FaultBadSignature: a job whose signature does not verify.
	FaultBadSignature
	// FaultStuck: a correctly signed job whose bytes are all equal.
	FaultStuck
	// FaultBiased: a correctly signed job whose bytes are 0x00 with
	// probability 1/2 and uniform otherwise.
	FaultBiased
	// FaultQueued: a healthy job answered 202 queued, completed after
	// Fault.Polls "running" polls (default 1).
	FaultQueued
	// FaultExhausted: the caller's balance drops to zero and the answer is
	// 402, as is every later request with that key until AddKey tops it up.
	FaultExhausted
	// FaultJobError: 202 queued, then the job ends in the other
	// asynchronous error form ({"status":"error","code","message",
	// "details"}) with Fault.Code (default "QuantumComputerError") and
	// Fault.Details on the first poll.
	FaultJobError
)

// faultNames are the names of the kinds, as ParseFaults and String use them.
var faultNames = map[FaultKind]string{
	FaultNone:          "none",
	FaultLatency:       "latency",
	FaultStatus:        "status",
	FaultJobFailed:     "jobfail",
	FaultDrop:          "drop",
	FaultTruncate:      "truncate",
	FaultMalformedJSON: "malformed",
	FaultWrongLength:   "wronglength",
	FaultBadSignature:  "badsig",
	FaultStuck:         "stuck",
	FaultBiased:        "biased",
	FaultQueued:        "queued",
	FaultExhausted:     "exhausted",
	FaultJobError:      "joberror",
}

// String returns the kind's name ("drop", "badsig", …).
func (k FaultKind) String() string {
	if n, ok := faultNames[k]; ok {
		return n
	}
	return "FaultKind(" + strconv.Itoa(int(k)) + ")"
}

// FaultKinds returns every kind but FaultNone, in order.
func FaultKinds() []FaultKind {
	kinds := make([]FaultKind, 0, len(faultNames))
	for k := range faultNames {
		if k != FaultNone {
			kinds = append(kinds, k)
		}
	}
	slices.Sort(kinds)
	return kinds
}

// BodyShape is one of the error body shapes services answer with
// (httpsource.ParseErrorBody reads them all).
type BodyShape int

// The error body shapes (see package httpsource's body types).
const (
	ShapeNested  BodyShape = iota // {"error":{"code","message"}}
	ShapeStatus                   // {"error","message","statusCode"}
	ShapeDetails                  // {"details"}
	ShapeCode                     // {"code","message"}
	ShapeText                     // plain text
	// ShapeDetailsList is {"details":[{"field","message","type"}, …]}, the
	// items from Fault.Details (one item of the status's code and message
	// if none are set).
	ShapeDetailsList
	// ShapeFastAPI is {"detail":[{"loc","msg","type"}, …]}, FastAPI's
	// validation errors, the items from Fault.Details likewise.
	ShapeFastAPI
)

// Shapes lists the body shapes of one code and message.
var Shapes = []BodyShape{ShapeNested, ShapeStatus, ShapeDetails, ShapeCode, ShapeText}

// ListShapes lists the body shapes that carry a list of structured items.
var ListShapes = []BodyShape{ShapeDetailsList, ShapeFastAPI}

// String returns the shape's name.
func (s BodyShape) String() string {
	switch s {
	case ShapeNested:
		return "nested"
	case ShapeStatus:
		return "status"
	case ShapeDetails:
		return "details"
	case ShapeCode:
		return "code"
	case ShapeText:
		return "text"
	case ShapeDetailsList:
		return "detailslist"
	case ShapeFastAPI:
		return "fastapi"
	}
	return "BodyShape(" + strconv.Itoa(int(s)) + ")"
}

// Fault is one misbehaviour for one entropy request. Only the fields of its
// Kind matter; zero fields take the defaults the kinds document.
type Fault struct {
	Kind       FaultKind
	Latency    time.Duration // FaultLatency
	Status     int           // FaultStatus: 200..599, or 0 for 503
	Shape      BodyShape     // FaultStatus
	RetryAfter string        // FaultStatus: the Retry-After header, verbatim; "" sends none
	Code       string        // FaultStatus: machine code; FaultJobFailed, FaultJobError: job error code
	Message    string        // FaultStatus, FaultJobFailed, FaultJobError
	Polls      int           // FaultQueued
	// Details are the items of a list shape (FaultStatus with
	// ShapeDetailsList or ShapeFastAPI) or of a FaultJobError.
	Details []httpsource.ErrorItemBody
}

// JobErrorStatus returns a FaultJobError fault: the job ends with status
// "error", code and details.
func JobErrorStatus(code string, details ...httpsource.ErrorItemBody) Fault {
	return Fault{Kind: FaultJobError, Code: code, Details: details}
}

// Status returns a FaultStatus fault: status in shape, with Retry-After
// retryAfter ("" for none; seconds like "2" or an HTTP-date). status must
// be the status of a final HTTP answer, 200..599, or 0 for the default,
// 503: Script refuses a fault with any other.
func Status(status int, shape BodyShape, retryAfter string) Fault {
	return Fault{Kind: FaultStatus, Status: status, Shape: shape, RetryAfter: retryAfter}
}

// JobFailure returns a FaultJobFailed fault with a job error code.
func JobFailure(code string) Fault { return Fault{Kind: FaultJobFailed, Code: code} }

// Latency returns a FaultLatency fault.
func Latency(d time.Duration) Fault { return Fault{Kind: FaultLatency, Latency: d} }

// Kind returns a fault of kind k with default parameters.
func Kind(k FaultKind) Fault { return Fault{Kind: k} }

// String describes the fault, e.g. "status 503 nested retry-after=2".
func (f Fault) String() string {
	switch f.Kind {
	case FaultStatus:
		s := fmt.Sprintf("status %d %s", f.withDefaults().Status, f.Shape)
		if f.RetryAfter != "" {
			s += " retry-after=" + f.RetryAfter
		}
		return s
	case FaultJobFailed:
		return "jobfail " + f.withDefaults().Code
	case FaultJobError:
		return "joberror " + f.withDefaults().Code
	case FaultLatency:
		return "latency " + f.withDefaults().Latency.String()
	}
	return f.Kind.String()
}

// check returns the error of a fault the server cannot answer with: a
// FaultStatus whose Status is not that of a final HTTP answer (net/http
// panics on a status outside 100..999, and a 1xx is no final answer).
func (f Fault) check() error {
	if f.Kind == FaultStatus && f.Status != 0 && (f.Status < 200 || f.Status > 599) {
		return fmt.Errorf("status %d is not the status of a final HTTP answer: want 200..599 (0: the default, 503)", f.Status)
	}
	return nil
}

// withDefaults fills the zero fields of f with its kind's defaults.
func (f Fault) withDefaults() Fault {
	switch f.Kind {
	case FaultLatency:
		if f.Latency <= 0 {
			f.Latency = 100 * time.Millisecond
		}
	case FaultStatus:
		if f.Status == 0 {
			f.Status = http.StatusServiceUnavailable
		}
		if f.Code == "" && f.Message == "" {
			f.Code, f.Message = statusText(f.Status)
		}
	case FaultJobFailed, FaultJobError:
		if f.Code == "" {
			f.Code = "QuantumComputerError"
		}
		if f.Message == "" {
			f.Message = jobMessages[f.Code]
		}
		if f.Message == "" {
			f.Message = "The entropy job could not be completed."
		}
	case FaultQueued:
		if f.Polls <= 0 {
			f.Polls = 1
		}
	}
	return f
}

// statusText returns the code and message the simulator sends with an error
// status, worded as the services the reference protocol follows word it.
func statusText(status int) (code, message string) {
	switch status {
	case 400:
		return "BadRequest", "Wrong value: one or more of the provided values is not valid."
	case 401:
		return "Unauthorized", "Invalid or missing API key. Check key and headers."
	case 402:
		return "PaymentRequired", "Insufficient balance. Top up or reduce usage."
	case 403:
		return "Forbidden", "The access to this operation was denied for this key."
	case 404:
		return "NotFound", "The specified resource does not exist."
	case 409:
		return "ResourceOccupied", "The resource is being used by another operation."
	case 422:
		return "Validation", "The request does not match the expected input."
	case 429:
		return "TooManyRequests", "Rate limit exceeded. Retry after the delay in Retry-After."
	case 500:
		return "InternalServerError", "The server failed with an unexpected error."
	case 502:
		return "BadGateway", "An upstream service failed."
	case 503:
		return "ServiceUnavailable", "Temporary overload or maintenance. Retry with backoff."
	}
	text := http.StatusText(status)
	if text == "" {
		text = "Error"
	}
	return strings.ReplaceAll(text, " ", ""), text + "."
}

// jobMessages are the messages of the job error codes: the quantum cloud's
// (QuantumComputerError … InternalError) and the reference protocol's own.
var jobMessages = map[string]string{
	"QuantumComputerError": "Generic failure while the job was processed on the QPU.",
	"QuotaExhaustedError":  "Inadequate credit balance to run this job.",
	"ContractExpiredError": "The contract governing this key has expired.",
	"SimulationTimeout":    "Runaway process timeout.",
	"SystemCancel":         "The job was cancelled by staff.",
	"InternalError":        "An unattributable internal error.",
	"JobFailed":            "The entropy job could not be completed.",
	"HardwareUnavailable":  "The fleet is temporarily unable to serve the request.",
	"Timeout":              "The job timed out.",
}

// transientJobCodes are the codes random FaultJobFailed faults draw from.
var transientJobCodes = []string{"QuantumComputerError", "JobFailed", "HardwareUnavailable", "Timeout", "SimulationTimeout", "InternalError"}

// randomStatuses are the statuses random FaultStatus faults draw from: the
// transient ones, so that a soak run keeps going.
var randomStatuses = []int{429, 500, 502, 503}

// faultDraw holds random fault probabilities and their generator.
type faultDraw struct {
	rng   *rand.Rand
	kinds []FaultKind // in order, for determinism
	cum   []float64   // cumulative probabilities
}

// newFaultDraw checks probs and builds a draw seeded with seed.
func newFaultDraw(seed int64, probs map[FaultKind]float64) (*faultDraw, error) {
	d := &faultDraw{rng: rand.New(rand.NewPCG(uint64(seed), 0x5eed))}
	kinds := make([]FaultKind, 0, len(probs))
	for k := range probs {
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return kinds[i] < kinds[j] })
	total := 0.0
	for _, k := range kinds {
		p := probs[k]
		if _, ok := faultNames[k]; !ok {
			return nil, fmt.Errorf("sim: unknown fault kind %d", int(k))
		}
		if !(p >= 0 && p <= 1) {
			return nil, fmt.Errorf("sim: probability of %s is %v, want 0..1", k, p)
		}
		if k == FaultNone || p == 0 {
			continue
		}
		total += p
		d.kinds = append(d.kinds, k)
		d.cum = append(d.cum, total)
	}
	if total > 1+1e-9 {
		return nil, fmt.Errorf("sim: fault probabilities add up to %v, more than 1", total)
	}
	return d, nil
}

// next draws a fault, with random parameters for the kinds that have some.
func (d *faultDraw) next() Fault {
	u := d.rng.Float64()
	for i, c := range d.cum {
		if u < c {
			f := Fault{Kind: d.kinds[i]}
			switch f.Kind {
			case FaultStatus:
				f.Status = randomStatuses[d.rng.IntN(len(randomStatuses))]
				f.Shape = Shapes[d.rng.IntN(len(Shapes))]
				if f.Status == 429 || f.Status == 503 {
					f.RetryAfter = "1"
				}
			case FaultJobFailed, FaultJobError:
				f.Code = transientJobCodes[d.rng.IntN(len(transientJobCodes))]
			case FaultLatency:
				f.Latency = time.Duration(50+d.rng.IntN(450)) * time.Millisecond
			}
			return f
		}
	}
	return Fault{}
}

// ParseFaults reads a fault spec such as "drop=0.1,status=0.05,badsig=0.02"
// into probabilities for SetRandomFaults. Names are those of FaultKind.String.
// An empty spec gives an empty map.
func ParseFaults(spec string) (map[FaultKind]float64, error) {
	out := map[FaultKind]float64{}
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return out, nil
	}
	byName := make(map[string]FaultKind, len(faultNames))
	for k, n := range faultNames {
		byName[n] = k
	}
	for _, part := range strings.Split(spec, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("sim: fault %q: want name=probability", part)
		}
		k, known := byName[strings.ToLower(strings.TrimSpace(name))]
		if !known || k == FaultNone {
			return nil, fmt.Errorf("sim: unknown fault %q (known: %s)", name, knownFaultNames())
		}
		p, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || !(p >= 0 && p <= 1) {
			return nil, fmt.Errorf("sim: fault %s: probability %q, want a number in 0..1", name, val)
		}
		out[k] += p
	}
	total := 0.0
	for _, p := range out {
		total += p
	}
	if total > 1+1e-9 {
		return nil, fmt.Errorf("sim: fault probabilities add up to %v, more than 1", total)
	}
	return out, nil
}

// knownFaultNames lists the names ParseFaults accepts.
func knownFaultNames() string {
	var names []string
	for _, k := range FaultKinds() {
		names = append(names, k.String())
	}
	return strings.Join(names, ", ")
}
