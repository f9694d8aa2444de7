package httpsource

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/provenrand/entropy"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fuzzAPIKey is the key of the sources under fuzzing: no error may show it.
const fuzzAPIKey = "sk_live_FUZZ0123456789abcdef"

// simPublicKey is the public key of sim.New(sim.WithSeed(1)), the server that
// answered the requests of simResponses. (Package sim imports this package,
// so these tests cannot run it; its answers are recorded here.)
const simPublicKey = "K5em8lzde16cmdYvB+gupmVCTSnNMjEia5eiB6uqDlg="

// fuzzNow is the clock of the fuzzed sources and of the recorded answers.
var fuzzNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fuzzResponse is one answer of a server to GET /v1/entropy?size=Size: its
// status, Retry-After and X-Request-Id headers and body, and the body of every
// GET /v1/jobs/{id} after it. Mode 1 declares a Content-Length longer than
// the body (a truncated answer); mode 2 closes the connection unanswered.
type fuzzResponse struct {
	name                  string
	status                int
	retryAfter, requestID string
	body, jobBody         string
	size                  int
	mode                  int
}

// simResponses are answers of the simulator (sim.New(sim.WithSeed(1),
// sim.WithKey(fuzzAPIKey, …), sim.WithClock(entropy.NowFunc(fuzzNow)))), recorded with
// httptest.NewRecorder: healthy jobs, each fault, each error status in each
// body shape. The jobs were asked for with the nonce fuzzNonce, so they are
// signed in protocol v2.
var simResponses = []fuzzResponse{
	{"healthy 1", 200, "", "req-000001", "{\"job_id\":\"job-d0ae5eb1f1904e9d\",\"status\":\"completed\",\"entropy\":\"MA==\",\"nonce\":\"000102030405060708090a0b0c0d0e0f\",\"timestamp\":\"2026-03-01T12:00:00Z\",\"signature\":\"o6/+ZjUwtE1q6yIYlf/PabGcw9I3P0/xhHI/31b16Anu3w3co15hP34eaF3wzU+Fb/UJJE2YAECBU5J2sAHVBA==\"}", "", 1, 0},
	{"healthy 32", 200, "", "req-000002", "{\"job_id\":\"job-5beb03afbc85c57e\",\"status\":\"completed\",\"entropy\":\"BNd6RWfm6cc3koJnXYCZitQTwNP6om1tAzuU+yHK8Vs=\",\"nonce\":\"000102030405060708090a0b0c0d0e0f\",\"timestamp\":\"2026-03-01T12:00:00Z\",\"signature\":\"NrM9eoHmUR5fdVl7593B0OHBAry/WrEihbUiEm8juOUBajtu4d+vgSQEEl3Y5v4NzXkZ9gSLgzqTau5udMDgDQ==\"}", "", 32, 0},
	{"healthy 100", 200, "", "req-000003", "{\"job_id\":\"job-8180867b0dd90faa\",\"status\":\"completed\",\"entropy\":\"FcIGfPTdJiFPnIN6B98w5UZ0ZJxhACW/NqPl3N0qD0CQHk+1ALf2hrkb9OgrGDgOQu8XFsvoKdQ/McvDQPDKD8hlK7zpbWtE69+wy9WkGKnAX9JS+0KWxpRP/VPAnZ/iMwGqRw==\",\"nonce\":\"000102030405060708090a0b0c0d0e0f\",\"timestamp\":\"2026-03-01T12:00:00Z\",\"signature\":\"kN8UEF3CjQRViwMtK37aiNOfqn8m4EeQ2bpSfAgJbLWmXPp3G2Paji07/BW1cL2g/jH5xhaoMOk8/vDLy6ktBA==\"}", "", 100, 0},
	{"unknown key", 401, "", "req-000004", "{\"error\":{\"code\":\"Unauthorized\",\"message\":\"Invalid or missing API key. Check key and headers.\"}}", "", 32, 0},
	{"no key", 401, "", "req-000005", "{\"error\":{\"code\":\"Unauthorized\",\"message\":\"Invalid or missing API key. Check key and headers.\"}}", "", 32, 0},
	{"size 0", 422, "", "req-000006", "{\"error\":{\"code\":\"Validation\",\"message\":\"size must be in 1..65536\"}}", "", 0, 0},
	{"truncate", 200, "", "req-000004", "{\"job_id\":\"job-3505671135d85499\",\"status\":\"completed\",\"entropy\":\"SN2rGmo174phB8ef8yyIBbOn/23Nccu0ohQR3lCdiUM=\",\"nonce\":\"000102030405060708090a0b0c", "", 32, 1},
	{"malformed", 200, "", "req-000005", "{\"job_id\";\"job-8601891d5d1fa340\",\"status\":\"completed\",\"entropy\":\"JTZxdz5PP46h3/ECYzzg66S/e4gnBLEppLOinuAI254=\",\"nonce\":\"000102030405060708090a0b0c0d0e0f\",\"timestamp\":\"2026-03-01T12:00:00Z\",\"signature\":\"ifLGYnDSdwUOL5bw9P2t273Y4voo7wdbBTnR3X1QNGxiGXwg7prAqazFnHUZV2+4wKpal0ziDPXTVGoEYDUfDw==\"}", "", 32, 0},
	{"wronglength", 200, "", "req-000006", "{\"job_id\":\"job-097d992a0113b48a\",\"status\":\"completed\",\"entropy\":\"CkuY660hNOiftMyrx4fUpZBC4Mp2um/v+1sOgBkPKrD8\",\"nonce\":\"000102030405060708090a0b0c0d0e0f\",\"timestamp\":\"2026-03-01T12:00:00Z\",\"signature\":\"cfSbXjPCneLRX4pPCena+LjpCNR6rhxwJ7pSZnt7rqybdyKTeppyPUBZx2IFsh72dizPvlKtOZV7RKa2zjNuDA==\"}", "", 32, 0},
	{"badsig", 200, "", "req-000007", "{\"job_id\":\"job-e86baf4beee1f1e0\",\"status\":\"completed\",\"entropy\":\"wonRAAZ+GYH9kvCaOSOPP5ZCbTtq9lDSo/xJYGY9oXQ=\",\"nonce\":\"000102030405060708090a0b0c0d0e0f\",\"timestamp\":\"2026-03-01T12:00:00Z\",\"signature\":\"o3eK5xz0iqSt38n5NCOqhT+eFWt1U0/M7aSQxyT8/pGbx93OQcsAKy9NJTGYf5qDjfSfO8rlLWZqio2HERRDDQ==\"}", "", 32, 0},
	{"stuck", 200, "", "req-000008", "{\"job_id\":\"job-3dcf30c59de89cda\",\"status\":\"completed\",\"entropy\":\"jo6Ojo6Ojo6Ojo6Ojo6Ojo6Ojo6Ojo6Ojo6Ojo6Ojo4=\",\"nonce\":\"000102030405060708090a0b0c0d0e0f\",\"timestamp\":\"2026-03-01T12:00:00Z\",\"signature\":\"hMgNnu7uxXi/kYtCR54fH7G1uxydqq+oEjMaZ5qmPpTc2ME+qxDlQ2XzMM4aosH/5NTmwM0QSRNCEadn+/0FBg==\"}", "", 32, 0},
	{"biased", 200, "", "req-000009", "{\"job_id\":\"job-a24f74a72d91ff37\",\"status\":\"completed\",\"entropy\":\"8QAAAAAAAAA7IwAAAAAAAGIAAADdJwDyABuYAAAAEoU=\",\"nonce\":\"000102030405060708090a0b0c0d0e0f\",\"timestamp\":\"2026-03-01T12:00:00Z\",\"signature\":\"MEqUc5lE3Jb98ZM+XlkKpw20+q+rFWpwg9yh2tjixMKB839Bq/PVqmJ4U2LiNKyM95yuQzdvz7i8b7e69JSeDQ==\"}", "", 32, 0},
	{"queued", 202, "", "req-000010", "{\"job_id\":\"job-3a0ced64fcdfc5ea\",\"status\":\"queued\"}", "{\"job_id\":\"job-3a0ced64fcdfc5ea\",\"status\":\"completed\",\"entropy\":\"oJwQn6fUl7B96Ipq2d57PWUuZOqBcl6fWX7IYNzJHXo=\",\"nonce\":\"000102030405060708090a0b0c0d0e0f\",\"timestamp\":\"2026-03-01T12:00:00Z\",\"signature\":\"azxAxO3ACa76it+QD25xzOAMJhYyqXSOhZj7jtvJYB7chnoMomO6+VNp5rm0co1cHJBwwtq2lB/JA+owbFEKCQ==\"}", 32, 0},
	{"jobfail QuantumComputerError", 202, "", "req-000016", "{\"job_id\":\"job-ec11a2196466cd77\",\"status\":\"queued\"}", "{\"job_id\":\"job-ec11a2196466cd77\",\"status\":\"failed\",\"error\":{\"code\":\"QuantumComputerError\",\"message\":\"Generic failure while the job was processed on the QPU.\"}}", 32, 0},
	{"jobfail QuotaExhaustedError", 202, "", "req-000018", "{\"job_id\":\"job-0e1cb18abae203e9\",\"status\":\"queued\"}", "{\"job_id\":\"job-0e1cb18abae203e9\",\"status\":\"failed\",\"error\":{\"code\":\"QuotaExhaustedError\",\"message\":\"Inadequate credit balance to run this job.\"}}", 32, 0},
	{"jobfail SimulationTimeout", 202, "", "req-000020", "{\"job_id\":\"job-a0b55bb8b2209264\",\"status\":\"queued\"}", "{\"job_id\":\"job-a0b55bb8b2209264\",\"status\":\"failed\",\"error\":{\"code\":\"SimulationTimeout\",\"message\":\"Runaway process timeout.\"}}", 32, 0},
	{"exhausted", 402, "", "req-000022", "{\"error\":{\"code\":\"PaymentRequired\",\"message\":\"Insufficient balance. Top up or reduce usage.\"}}", "", 32, 0},
	{"status 400 nested", 400, "", "req-000023", "{\"error\":{\"code\":\"BadRequest\",\"message\":\"Wrong value: one or more of the provided values is not valid.\"}}", "", 32, 0},
	{"status 400 status", 400, "", "req-000024", "{\"error\":\"BadRequest\",\"message\":\"Wrong value: one or more of the provided values is not valid.\",\"statusCode\":400}", "", 32, 0},
	{"status 400 details", 400, "", "req-000025", "{\"details\":\"Wrong value: one or more of the provided values is not valid.\"}", "", 32, 0},
	{"status 400 code", 400, "", "req-000026", "{\"code\":\"BadRequest\",\"message\":\"Wrong value: one or more of the provided values is not valid.\"}", "", 32, 0},
	{"status 400 text", 400, "", "req-000027", "Wrong value: one or more of the provided values is not valid.\n", "", 32, 0},
	{"status 401 nested", 401, "", "req-000028", "{\"error\":{\"code\":\"Unauthorized\",\"message\":\"Invalid or missing API key. Check key and headers.\"}}", "", 32, 0},
	{"status 401 status", 401, "", "req-000029", "{\"error\":\"Unauthorized\",\"message\":\"Invalid or missing API key. Check key and headers.\",\"statusCode\":401}", "", 32, 0},
	{"status 401 details", 401, "", "req-000030", "{\"details\":\"Invalid or missing API key. Check key and headers.\"}", "", 32, 0},
	{"status 401 code", 401, "", "req-000031", "{\"code\":\"Unauthorized\",\"message\":\"Invalid or missing API key. Check key and headers.\"}", "", 32, 0},
	{"status 401 text", 401, "", "req-000032", "Invalid or missing API key. Check key and headers.\n", "", 32, 0},
	{"status 402 nested", 402, "", "req-000033", "{\"error\":{\"code\":\"PaymentRequired\",\"message\":\"Insufficient balance. Top up or reduce usage.\"}}", "", 32, 0},
	{"status 402 status", 402, "", "req-000034", "{\"error\":\"PaymentRequired\",\"message\":\"Insufficient balance. Top up or reduce usage.\",\"statusCode\":402}", "", 32, 0},
	{"status 402 details", 402, "", "req-000035", "{\"details\":\"Insufficient balance. Top up or reduce usage.\"}", "", 32, 0},
	{"status 402 code", 402, "", "req-000036", "{\"code\":\"PaymentRequired\",\"message\":\"Insufficient balance. Top up or reduce usage.\"}", "", 32, 0},
	{"status 402 text", 402, "", "req-000037", "Insufficient balance. Top up or reduce usage.\n", "", 32, 0},
	{"status 403 nested", 403, "", "req-000038", "{\"error\":{\"code\":\"Forbidden\",\"message\":\"The access to this operation was denied for this key.\"}}", "", 32, 0},
	{"status 403 status", 403, "", "req-000039", "{\"error\":\"Forbidden\",\"message\":\"The access to this operation was denied for this key.\",\"statusCode\":403}", "", 32, 0},
	{"status 403 details", 403, "", "req-000040", "{\"details\":\"The access to this operation was denied for this key.\"}", "", 32, 0},
	{"status 403 code", 403, "", "req-000041", "{\"code\":\"Forbidden\",\"message\":\"The access to this operation was denied for this key.\"}", "", 32, 0},
	{"status 403 text", 403, "", "req-000042", "The access to this operation was denied for this key.\n", "", 32, 0},
	{"status 404 nested", 404, "", "req-000043", "{\"error\":{\"code\":\"NotFound\",\"message\":\"The specified resource does not exist.\"}}", "", 32, 0},
	{"status 404 status", 404, "", "req-000044", "{\"error\":\"NotFound\",\"message\":\"The specified resource does not exist.\",\"statusCode\":404}", "", 32, 0},
	{"status 404 details", 404, "", "req-000045", "{\"details\":\"The specified resource does not exist.\"}", "", 32, 0},
	{"status 404 code", 404, "", "req-000046", "{\"code\":\"NotFound\",\"message\":\"The specified resource does not exist.\"}", "", 32, 0},
	{"status 404 text", 404, "", "req-000047", "The specified resource does not exist.\n", "", 32, 0},
	{"status 409 nested", 409, "", "req-000048", "{\"error\":{\"code\":\"ResourceOccupied\",\"message\":\"The resource is being used by another operation.\"}}", "", 32, 0},
	{"status 409 status", 409, "", "req-000049", "{\"error\":\"ResourceOccupied\",\"message\":\"The resource is being used by another operation.\",\"statusCode\":409}", "", 32, 0},
	{"status 409 details", 409, "", "req-000050", "{\"details\":\"The resource is being used by another operation.\"}", "", 32, 0},
	{"status 409 code", 409, "", "req-000051", "{\"code\":\"ResourceOccupied\",\"message\":\"The resource is being used by another operation.\"}", "", 32, 0},
	{"status 409 text", 409, "", "req-000052", "The resource is being used by another operation.\n", "", 32, 0},
	{"status 422 nested", 422, "", "req-000053", "{\"error\":{\"code\":\"Validation\",\"message\":\"The request does not match the expected input.\"}}", "", 32, 0},
	{"status 422 status", 422, "", "req-000054", "{\"error\":\"Validation\",\"message\":\"The request does not match the expected input.\",\"statusCode\":422}", "", 32, 0},
	{"status 422 details", 422, "", "req-000055", "{\"details\":\"The request does not match the expected input.\"}", "", 32, 0},
	{"status 422 code", 422, "", "req-000056", "{\"code\":\"Validation\",\"message\":\"The request does not match the expected input.\"}", "", 32, 0},
	{"status 422 text", 422, "", "req-000057", "The request does not match the expected input.\n", "", 32, 0},
	{"status 429 nested retry-after=2", 429, "2", "req-000058", "{\"error\":{\"code\":\"TooManyRequests\",\"message\":\"Rate limit exceeded. Retry after the delay in Retry-After.\"}}", "", 32, 0},
	{"status 429 status retry-after=Sun, 01 Mar 2026 12:01:30 GMT", 429, "Sun, 01 Mar 2026 12:01:30 GMT", "req-000059", "{\"error\":\"TooManyRequests\",\"message\":\"Rate limit exceeded. Retry after the delay in Retry-After.\",\"statusCode\":429}", "", 32, 0},
	{"status 429 details retry-after=2", 429, "2", "req-000060", "{\"details\":\"Rate limit exceeded. Retry after the delay in Retry-After.\"}", "", 32, 0},
	{"status 429 code retry-after=2", 429, "2", "req-000061", "{\"code\":\"TooManyRequests\",\"message\":\"Rate limit exceeded. Retry after the delay in Retry-After.\"}", "", 32, 0},
	{"status 429 text retry-after=2", 429, "2", "req-000062", "Rate limit exceeded. Retry after the delay in Retry-After.\n", "", 32, 0},
	{"status 500 nested", 500, "", "req-000063", "{\"error\":{\"code\":\"InternalServerError\",\"message\":\"The server failed with an unexpected error.\"}}", "", 32, 0},
	{"status 500 status", 500, "", "req-000064", "{\"error\":\"InternalServerError\",\"message\":\"The server failed with an unexpected error.\",\"statusCode\":500}", "", 32, 0},
	{"status 500 details", 500, "", "req-000065", "{\"details\":\"The server failed with an unexpected error.\"}", "", 32, 0},
	{"status 500 code", 500, "", "req-000066", "{\"code\":\"InternalServerError\",\"message\":\"The server failed with an unexpected error.\"}", "", 32, 0},
	{"status 500 text", 500, "", "req-000067", "The server failed with an unexpected error.\n", "", 32, 0},
	{"status 502 nested", 502, "", "req-000068", "{\"error\":{\"code\":\"BadGateway\",\"message\":\"An upstream service failed.\"}}", "", 32, 0},
	{"status 502 status", 502, "", "req-000069", "{\"error\":\"BadGateway\",\"message\":\"An upstream service failed.\",\"statusCode\":502}", "", 32, 0},
	{"status 502 details", 502, "", "req-000070", "{\"details\":\"An upstream service failed.\"}", "", 32, 0},
	{"status 502 code", 502, "", "req-000071", "{\"code\":\"BadGateway\",\"message\":\"An upstream service failed.\"}", "", 32, 0},
	{"status 502 text", 502, "", "req-000072", "An upstream service failed.\n", "", 32, 0},
	{"status 503 nested retry-after=2", 503, "2", "req-000073", "{\"error\":{\"code\":\"ServiceUnavailable\",\"message\":\"Temporary overload or maintenance. Retry with backoff.\"}}", "", 32, 0},
	{"status 503 status retry-after=Sun, 01 Mar 2026 12:01:30 GMT", 503, "Sun, 01 Mar 2026 12:01:30 GMT", "req-000074", "{\"error\":\"ServiceUnavailable\",\"message\":\"Temporary overload or maintenance. Retry with backoff.\",\"statusCode\":503}", "", 32, 0},
	{"status 503 details retry-after=2", 503, "2", "req-000075", "{\"details\":\"Temporary overload or maintenance. Retry with backoff.\"}", "", 32, 0},
	{"status 503 code retry-after=2", 503, "2", "req-000076", "{\"code\":\"ServiceUnavailable\",\"message\":\"Temporary overload or maintenance. Retry with backoff.\"}", "", 32, 0},
	{"status 503 text retry-after=2", 503, "2", "req-000077", "Temporary overload or maintenance. Retry with backoff.\n", "", 32, 0},
}

// handResponses are answers the simulator does not give: other shapes and
// types, the API key echoed back, hostile headers.
var handResponses = []fuzzResponse{
	{"key echoed in message", 401, "", "req-1", `{"error":"Unauthorized","message":"key ` + fuzzAPIKey + ` is not valid","statusCode":401}`, "", 32, 0},
	{"key escaped in JSON", 403, "", "req-2", `{"code":"Forbidden","message":"sk_live_FUZZ\u0030123456789abcdef"}`, "", 32, 0},
	{"key in nested code", 400, "", "req-3", `{"error":{"code":"` + fuzzAPIKey + `","message":"x"}}`, "", 32, 0},
	{"key in details object", 422, "", "req-4", `{"details":{"key":["` + fuzzAPIKey + `"]}}`, "", 32, 0},
	{"key in request id", 500, "", "id-" + fuzzAPIKey, `oops`, "", 32, 0},
	{"key in retry-after", 503, fuzzAPIKey, "req-5", ``, "", 32, 0},
	{"key in plain text", 502, "", "", "<html><body>Bad gateway for Bearer " + fuzzAPIKey + "</body></html>", "", 32, 0},
	{"key as job id", 200, "", "req-6", `{"job_id":"` + fuzzAPIKey + `","status":"completed","entropy":"AAAA","timestamp":"2026-03-01T12:00:00Z","signature":"AA=="}`, "", 3, 0},
	{"key in failed job", 202, "", "req-7", `{"job_id":"j1","status":"queued"}`, `{"job_id":"j1","status":"failed","error":{"code":"` + fuzzAPIKey + `","message":"` + fuzzAPIKey + `"}}`, 32, 0},
	{"failed at once", 200, "", "req-8", `{"job_id":"j2","status":"failed","error":{"code":"HardwareUnavailable","message":"QPU offline"}}`, "", 32, 0},
	{"failed without error", 202, "", "", `{"job_id":"j3","status":"queued"}`, `{"job_id":"j3","status":"failed"}`, 32, 0},
	{"running forever", 202, "0.001", "", `{"job_id":"j4","status":"queued"}`, `{"job_id":"j4","status":"running"}`, 32, 0},
	{"poll answers another job", 202, "", "", `{"job_id":"j5","status":"queued"}`, `{"job_id":"j6","status":"queued"}`, 32, 0},
	{"poll answers an error", 202, "", "", `{"job_id":"j7","status":"queued"}`, `{"error":{"code":"NotFound","message":"no such job"}}`, 32, 0},
	{"wrong types", 200, "", "", `{"job_id":7,"status":true,"entropy":[1,2],"timestamp":0,"signature":{}}`, "", 32, 0},
	{"null fields", 200, "", "", `{"job_id":null,"status":null}`, "", 32, 0},
	{"unknown status", 200, "", "", `{"job_id":"j8","status":"done"}`, "", 32, 0},
	{"bad base64", 200, "", "", `{"job_id":"j9","status":"completed","entropy":"!!!!","timestamp":"2026-03-01T12:00:00Z","signature":"AA=="}`, "", 3, 0},
	{"unpadded base64", 200, "", "", `{"job_id":"j9","status":"completed","entropy":"AAE","timestamp":"2026-03-01T12:00:00Z","signature":"AA=="}`, "", 2, 0},
	{"url base64", 200, "", "", `{"job_id":"j9","status":"completed","entropy":"-_-_","timestamp":"2026-03-01T12:00:00Z","signature":"AA=="}`, "", 3, 0},
	{"no signature", 200, "", "", `{"job_id":"j9","status":"completed","entropy":"AAAA","timestamp":"2026-03-01T12:00:00Z"}`, "", 3, 0},
	{"bad timestamp", 200, "", "", `{"job_id":"j9","status":"completed","entropy":"AAAA","timestamp":"yesterday","signature":"AA=="}`, "", 3, 0},
	{"NUL in job id", 200, "", "", `{"job_id":"j\u0000","status":"queued"}`, "", 32, 0},
	{"array body", 200, "", "", `[{"job_id":"j"}]`, "", 32, 0},
	{"duplicate keys", 200, "", "", `{"job_id":"a","job_id":"b","status":"queued","status":"completed"}`, "", 32, 0},
	{"empty 200", 200, "", "", ``, "", 32, 0},
	{"binary junk", 500, "", "", "\x00\xff\xfe\x1b[31m\r\n\x7f", "", 32, 0},
	{"huge retry-after", 429, "99999999999999999999", "", `{"error":"TooManyRequests","message":"slow down","statusCode":429}`, "", 32, 0},
	{"negative retry-after", 429, "-3", "", `{"code":"RateLimited","message":"slow down"}`, "", 32, 0},
	{"NaN retry-after", 503, "NaN", "", `Service Unavailable`, "", 32, 0},
	{"Inf retry-after", 503, "+Inf", "", `Service Unavailable`, "", 32, 0},
	{"date retry-after", 503, "Sun, 01 Mar 2026 12:01:30 GMT", "", `Service Unavailable`, "", 32, 0},
	{"past date retry-after", 429, "Thu, 01 Jan 1970 00:00:00 GMT", "", ``, "", 32, 0},
	{"dropped", 200, "", "", ``, "", 32, 2},
	{"other status", 418, "", "", `{"error":"I'm a teapot"}`, "", 32, 0},
	{"redirect", 302, "", "", `moved`, "", 32, 0},
}

// allResponses returns the recorded and the hand-made answers.
func allResponses() []fuzzResponse {
	return append(append([]fuzzResponse(nil), simResponses...), handResponses...)
}

// fuzzSource returns a source of the fuzz key with the simulator's public
// key (or none), the fuzz clock, and fast polls.
func fuzzSource(tb testing.TB, base string, client *http.Client, withPub bool) *Source {
	tb.Helper()
	opts := []Option{WithAPIKey(fuzzAPIKey), WithPollInterval(time.Millisecond, 4*time.Millisecond)}
	if withPub {
		pub, err := base64.StdEncoding.DecodeString(simPublicKey)
		if err != nil {
			tb.Fatal(err)
		}
		opts = append(opts, WithPublicKey(pub))
	}
	if client != nil {
		opts = append(opts, WithHTTPClient(client))
	}
	s, err := New(base, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	s.now = func() time.Time { return fuzzNow }
	s.newNonce = func() ([]byte, error) { return fuzzNonce(), nil }
	return s
}

// fuzzNonce is the nonce of every request of the fuzzed sources, the one the
// recorded answers were made for.
func fuzzNonce() []byte {
	b := make([]byte, MinNonceSize)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// checkNoKey fails if the API key shows in any text of err.
func checkNoKey(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if strings.Contains(err.Error(), fuzzAPIKey) {
		t.Fatalf("API key in error: %q", err.Error())
	}
	var ae *entropy.APIError
	if errors.As(err, &ae) {
		for _, f := range []string{ae.Code, ae.Message, ae.RequestID, string(ae.Body)} {
			if strings.Contains(f, fuzzAPIKey) {
				t.Fatalf("API key in a field of %#v", ae)
			}
		}
	}
	var je *entropy.JobError
	if errors.As(err, &je) {
		for _, f := range []string{je.JobID, je.Code, je.Message} {
			if strings.Contains(f, fuzzAPIKey) {
				t.Fatalf("API key in a field of %#v", je)
			}
		}
	}
}

// checkText fails unless s is valid UTF-8 on one line without control
// characters, at most max bytes long: what an error may carry into a log.
func checkText(t *testing.T, what, s string, max int) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("%s is not UTF-8: %q", what, s)
	}
	if len(s) > max {
		t.Fatalf("%s is %d bytes, more than %d", what, len(s), max)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			t.Fatalf("%s has control character %U: %q", what, r, s)
		}
	}
}

// FuzzParseErrorBody feeds arbitrary error bodies to ParseErrorBody: no
// panic, and a code and a message that are short single-line UTF-8 text.
func FuzzParseErrorBody(f *testing.F) {
	for _, r := range allResponses() {
		f.Add([]byte(r.body))
		if r.jobBody != "" {
			f.Add([]byte(r.jobBody))
		}
	}
	f.Add([]byte(`{"error":"line one\nline two","message":"a\u0000b\r\nc","statusCode":500}`))
	f.Add([]byte(`{"code":"` + strings.Repeat("C", 2000) + `","message":"` + strings.Repeat("é", 700) + `"}`))
	f.Add([]byte(`{"details":["a",{"b":null}],"message":null}`))
	f.Add([]byte(`{"details":null,"error":null}`))
	f.Add([]byte(`{"error":{"code":5,"message":"x"}}`))
	f.Add([]byte(`{"error":["a"]}`))
	f.Add([]byte(`{"message":"\ud800"}`))
	f.Add([]byte(strings.Repeat("x ", 600)))
	f.Fuzz(func(t *testing.T, body []byte) {
		code, msg := ParseErrorBody(body)
		max := maxTextMessage + len("…")
		checkText(t, "code", code, max)
		checkText(t, "message", msg, max)
		if len(bytes.TrimSpace(body)) == 0 && (code != "" || msg != "") {
			t.Fatalf("empty body gave %q, %q", code, msg)
		}
		code2, msg2 := ParseErrorBody(body)
		if code != code2 || msg != msg2 {
			t.Fatal("ParseErrorBody is not deterministic")
		}
	})
}

// FuzzAPIError feeds arbitrary statuses, headers and bodies to the code that
// turns an error answer into an *entropy.APIError: no panic, the status kept,
// no API key anywhere, a non-negative Retry-After, a bounded body, short
// single-line texts, and a class for every error.
func FuzzAPIError(f *testing.F) {
	for _, r := range allResponses() {
		f.Add(r.status, r.retryAfter, r.requestID, []byte(r.body))
	}
	f.Add(429, "", "", []byte(``))
	f.Add(999, "1e308", "\x00", bytes.Repeat([]byte("k"), 5000))
	f.Add(0, "", "", []byte(nil))
	f.Add(-1, "1", "r", []byte(`{}`))
	plain := fuzzSource(f, "http://127.0.0.1:1", nil, true)
	quota := fuzzSource(f, "http://127.0.0.1:1", nil, true)
	quota.quota429 = true
	f.Fuzz(func(t *testing.T, status int, retryAfter, requestID string, body []byte) {
		h := http.Header{}
		if retryAfter != "" {
			h.Set("Retry-After", retryAfter)
		}
		if requestID != "" {
			h.Set(RequestIDHeader, requestID)
		}
		res := &http.Response{StatusCode: status, Header: h}
		for _, s := range []*Source{plain, quota} {
			e := s.apiError(res, body)
			checkNoKey(t, e)
			if e.StatusCode != status {
				t.Fatalf("status %d became %d", status, e.StatusCode)
			}
			if e.RetryAfter < 0 {
				t.Fatalf("Retry-After %q gave %v", retryAfter, e.RetryAfter)
			}
			if len(e.Body) > maxErrorBodyKept {
				t.Fatalf("body kept is %d bytes", len(e.Body))
			}
			max := maxTextMessage + len("…")
			checkText(t, "code", e.Code, max)
			checkText(t, "message", e.Message, max)
			checkText(t, "request id", e.RequestID, max)
			if e.Quota && (status != http.StatusTooManyRequests || !s.quota429) {
				t.Fatalf("quota set on %d", status)
			}
			_ = entropy.Classify(e)
			_ = entropy.Retryable(e)
			if got := entropy.RetryAfter(e); got != e.RetryAfter {
				t.Fatalf("RetryAfter(err) %v, field %v", got, e.RetryAfter)
			}
		}
	})
}

// FuzzRetryAfter feeds arbitrary Retry-After values to retryAfter: never
// negative, whole seconds read exactly, an HTTP-date read against the clock,
// everything else 0.
func FuzzRetryAfter(f *testing.F) {
	maxSecs := float64(math.MaxInt64) / float64(time.Second)
	for _, v := range []string{
		"", "0", "2", "120", " 7 ", "1.5", "0.001", "-3", "-0", "NaN", "+Inf", "-Inf", "1e308", "1e-308",
		"0x1p4", "1_000", "99999999999999999999", "9223372036", "9223372037",
		strconv.FormatFloat(maxSecs, 'g', -1, 64),
		strconv.FormatFloat(math.Nextafter(maxSecs, 0), 'g', -1, 64),
		strconv.FormatFloat(math.Nextafter(math.Nextafter(maxSecs, 0), 0), 'g', -1, 64),
		"Sun, 01 Mar 2026 12:01:30 GMT", "Sunday, 01-Mar-26 12:01:30 GMT", "Sun Mar  1 12:01:30 2026",
		"Thu, 01 Jan 1970 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", "Sun, 01 Mar 2026 12:01:30 CET",
		"soon", "2 seconds", fuzzAPIKey,
	} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{}
		h.Set("Retry-After", v)
		d := retryAfter(h, fuzzNow)
		if d < 0 {
			t.Fatalf("Retry-After %q gave %v", v, d)
		}
		tv := strings.TrimSpace(h.Get("Retry-After"))
		if n, err := strconv.ParseUint(tv, 10, 32); err == nil {
			if want := time.Duration(n) * time.Second; d != want {
				t.Fatalf("Retry-After %q gave %v, want %v", v, d, want)
			}
		}
		if at, err := http.ParseTime(tv); err == nil {
			if want := max(at.Sub(fuzzNow), 0); d != want {
				t.Fatalf("Retry-After %q gave %v, want %v", v, d, want)
			}
		}
	})
}

// fuzzServer serves one fuzzResponse at a time, for FuzzFetch.
type fuzzServer struct {
	mu  sync.Mutex
	cur fuzzResponse
}

// ServeHTTP answers GET /v1/entropy with the current answer and every
// GET /v1/jobs/{id} with its job body.
func (fs *fuzzServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fs.mu.Lock()
	cur := fs.cur
	fs.mu.Unlock()
	if strings.HasPrefix(r.URL.Path, JobsPath) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, cur.jobBody)
		return
	}
	switch cur.mode {
	case 1:
		w.Header().Set("Content-Length", strconv.Itoa(len(cur.body)+10))
	case 2:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
	}
	if cur.retryAfter != "" {
		w.Header().Set("Retry-After", cur.retryAfter)
	}
	if cur.requestID != "" {
		w.Header().Set(RequestIDHeader, cur.requestID)
	}
	w.WriteHeader(cur.status)
	_, _ = io.WriteString(w, cur.body)
}

// FuzzFetch runs the whole Fetch path against a loopback server that answers
// with fuzzed statuses, headers, bodies and job bodies. Fetch must not panic
// and must end within its context; an error carries no bytes and no API key;
// a block has exactly the bytes asked for, which are the entropy of a
// completed job the server sent, and it is Verifiable only if the service's
// signature over them checks.
func FuzzFetch(f *testing.F) {
	for _, r := range allResponses() {
		f.Add(r.status, r.retryAfter, r.requestID, []byte(r.body), []byte(r.jobBody), r.size, byte(r.mode))
	}
	fs := &fuzzServer{}
	srv := httptest.NewUnstartedServer(fs)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	f.Cleanup(srv.Close)
	pub, _ := base64.StdEncoding.DecodeString(simPublicKey)
	signed := fuzzSource(f, srv.URL, srv.Client(), true)
	unsigned := fuzzSource(f, srv.URL, srv.Client(), false)

	f.Fuzz(func(t *testing.T, status int, retryAfter, requestID string, body, jobBody []byte, size int, mode byte) {
		if status < 200 || status > 599 {
			status = 200 + (status%400+400)%400
		}
		if size < 1 || size > MaxSize {
			size = 1 + (size%MaxSize+MaxSize)%MaxSize
		}
		r := fuzzResponse{status: status, retryAfter: retryAfter, requestID: requestID,
			body: string(body), jobBody: string(jobBody), size: size, mode: int(mode % 3)}
		fs.mu.Lock()
		fs.cur = r
		fs.mu.Unlock()
		for _, s := range []*Source{signed, unsigned} {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			blk, err := s.Fetch(ctx, size)
			cancel()
			if err != nil {
				checkNoKey(t, err)
				if !reflect.DeepEqual(blk, entropy.Block{}) {
					t.Fatalf("error %v with a block %+v", err, blk)
				}
				_ = entropy.Classify(err)
				continue
			}
			if r.mode != 0 {
				t.Fatalf("a block from an answer in mode %d", r.mode)
			}
			if status != http.StatusOK && status != http.StatusAccepted {
				t.Fatalf("a block from an answer with status %d", status)
			}
			if len(blk.Data) != size {
				t.Fatalf("block of %d bytes, asked for %d", len(blk.Data), size)
			}
			// The bytes are the entropy of the completed job the server sent.
			src := body
			if status == http.StatusAccepted || !bytes.Contains(body, []byte(StatusCompleted)) {
				src = jobBody
			}
			var jr JobResponse
			if err := json.Unmarshal(src, &jr); err != nil || jr.Status != StatusCompleted || jr.JobID != blk.JobID {
				t.Fatalf("block %+v is not the completed job the server sent (%v)", blk, err)
			}
			if raw, err := base64.StdEncoding.Strict().DecodeString(jr.Entropy); err != nil || !bytes.Equal(raw, blk.Data) {
				t.Fatalf("block bytes differ from the job's entropy")
			}
			if blk.Source != DefaultName || blk.JobID == "" {
				t.Fatalf("block source %q job %q", blk.Source, blk.JobID)
			}
			if s == unsigned && blk.Verifiable {
				t.Fatal("a source without a public key returned a verifiable block")
			}
			if blk.Verifiable && !VerifySignatureV2(pub, blk.JobID, fuzzNonce(), len(blk.Data), blk.Evidence.Timestamp, blk.Data, blk.Proof) {
				t.Fatalf("verifiable block whose signature does not check: %+v", blk)
			}
			if s == signed && !blk.Verifiable {
				t.Fatal("a source with a public key returned a block that is not verifiable")
			}
		}
	})
}

// TestFuzzSeedsReachTheSignedPath checks that the recorded answers still
// verify under simPublicKey, so FuzzFetch starts from verifiable blocks.
func TestFuzzSeedsReachTheSignedPath(t *testing.T) {
	fs := &fuzzServer{}
	srv := httptest.NewServer(fs)
	defer srv.Close()
	s := fuzzSource(t, srv.URL, srv.Client(), true)
	verified := 0
	for _, r := range simResponses {
		fs.mu.Lock()
		fs.cur = r
		fs.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		blk, err := s.Fetch(ctx, r.size)
		cancel()
		if err == nil && blk.Verifiable {
			verified++
		}
	}
	if verified < 5 {
		t.Fatalf("%d recorded answers verify, want the healthy, stuck, biased and queued ones", verified)
	}
}

// TestJobIDEchoingTheKeyIsRedacted is the regression test of a leak that
// FuzzFetch found: a service that answers with the API key as the job ID had
// the key printed by the "signature does not verify" error and by the error
// of a poll that the context ended.
func TestJobIDEchoingTheKeyIsRedacted(t *testing.T) {
	var jobBody atomic.Value // string
	jobBody.Store("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		jobBody := jobBody.Load().(string)
		if strings.HasPrefix(r.URL.Path, JobsPath) {
			_, _ = io.WriteString(w, jobBody)
			return
		}
		if jobBody != "" {
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, `{"job_id":"`+fuzzAPIKey+`","status":"queued"}`)
			return
		}
		_, _ = io.WriteString(w, `{"job_id":"`+fuzzAPIKey+`","status":"completed","entropy":"AAAA","timestamp":"2026-03-01T12:00:00Z","signature":"AA=="}`)
	}))
	defer srv.Close()
	s, err := New(srv.URL, WithAPIKey(fuzzAPIKey), WithHTTPClient(srv.Client()),
		WithPublicKey(make([]byte, 32)), WithPollInterval(time.Millisecond, 2*time.Millisecond))
	require.NoError(t, err)

	// Such a job ID is now refused as soon as it is read (it would travel into
	// labels and journals), before any signature check or poll.
	_, err = s.Fetch(context.Background(), 3)
	require.ErrorIs(t, err, ErrMalformed)
	assert.NotContains(t, err.Error(), fuzzAPIKey)

	jobBody.Store(`{"job_id":"` + fuzzAPIKey + `","status":"running"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = s.Fetch(ctx, 3)
	require.ErrorIs(t, err, ErrMalformed)
	assert.NotContains(t, err.Error(), fuzzAPIKey)
}

// TestPlainTextIsOneShortLine is the regression test of what FuzzParseErrorBody
// and FuzzAPIError found in plain-text error bodies and request IDs: control
// characters (NUL, ESC sequences that recolour a terminal, DEL) went through
// into errors and logs, and invalid UTF-8 was replaced after the cut, so a
// "bounded" message could reach three times its bound.
func TestPlainTextIsOneShortLine(t *testing.T) {
	_, msg := ParseErrorBody([]byte("\x00\xff\xfe\x1b[31mred\x7f alert\u0085next"))
	assert.Equal(t, "\uFFFD [31mred alert next", msg)
	_, msg = ParseErrorBody([]byte(strings.Repeat("\xff ", 600)))
	assert.LessOrEqual(t, len(msg), maxTextMessage+len("…"))
	assert.True(t, utf8.ValidString(msg))

	s, err := New("http://127.0.0.1:1", WithAPIKey(fuzzAPIKey))
	require.NoError(t, err)
	h := http.Header{}
	h.Set(RequestIDHeader, "req\x00-\x1b]0;pwned\x07")
	e := s.apiError(&http.Response{StatusCode: 500, Header: h}, []byte("boom\x1b[2J"))
	assert.Equal(t, "req - ]0;pwned", e.RequestID)
	assert.Equal(t, "boom [2J", e.Message)
}

// TestJSONErrorFieldsAreOneShortLine is the regression test of what
// FuzzParseErrorBody found in the JSON shapes: their code and message were
// taken verbatim, so a service could put newlines (forged log lines), control
// characters and megabytes of text into every error.
func TestJSONErrorFieldsAreOneShortLine(t *testing.T) {
	code, msg := ParseErrorBody([]byte(`{"error":"line one\nline two","message":"a\u0000b\r\nc","statusCode":500}`))
	assert.Equal(t, "line one line two", code)
	assert.Equal(t, "a b c", msg)
	code, msg = ParseErrorBody([]byte(`{"error":{"code":"` + strings.Repeat("C", 2000) + `","message":"` + strings.Repeat("é", 700) + `"}}`))
	assert.Equal(t, strings.Repeat("C", maxTextMessage)+"…", code)
	assert.LessOrEqual(t, len(msg), maxTextMessage+len("…"))
	assert.True(t, utf8.ValidString(msg))
	code, msg = ParseErrorBody([]byte(`{"code":" \t ","message":"\n"}`))
	assert.Equal(t, "", code)
	assert.Equal(t, `{"code":" \t ","message":"\n"}`, msg, "blank fields: the body is the message")
}
