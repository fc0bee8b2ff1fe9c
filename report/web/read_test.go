package web

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestReadReportRoundTrip(t *testing.T) {
	d := ReportData{Generated: time.Unix(1700000000, 0).UTC(), Generator: "swarm test",
		Results: json.RawMessage(`{"id":"abc","name":"n","note":"</script><!-- x"}`),
		Status:  json.RawMessage(`{"state":"finished"}`)}
	var b bytes.Buffer
	if err := WriteReport(&b, d); err != nil {
		t.Fatal(err)
	}
	got, err := ReadReport(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var a, c map[string]any
	_ = json.Unmarshal(got.Results, &a)
	_ = json.Unmarshal(d.Results, &c)
	if a["note"] != c["note"] || a["id"] != "abc" || !got.Generated.Equal(d.Generated) || got.Generator != d.Generator {
		t.Fatalf("read back %+v / %v", got, a)
	}
}

func TestReadReportBadInput(t *testing.T) {
	for name, in := range map[string]string{
		"not a report":  "<html><body>hello</body></html>",
		"cut short":     `<html>` + dataOpen + `{"results":{}`,
		"bad json":      dataOpen + `{"results":` + "</script>",
		"no results":    dataOpen + `{"generated":"2026-01-01T00:00:00Z"}</script>`,
		"results array": dataOpen + `{"results":[1]}</script>`,
	} {
		if _, err := ReadReport([]byte(in)); err == nil {
			t.Errorf("%s: read without an error", name)
		} else if !strings.Contains(err.Error(), "report") && !strings.Contains(err.Error(), "results") {
			t.Errorf("%s: unclear error %q", name, err)
		}
	}
}

// FuzzReadReport: any file, however made, is read or refused, never a
// panic; what is read has its results as a JSON object.
func FuzzReadReport(f *testing.F) {
	var b bytes.Buffer
	_ = WriteReport(&b, ReportData{Results: json.RawMessage(`{"id":"a","name":"n"}`)})
	f.Add(b.Bytes())
	f.Add([]byte(dataOpen + `{"results":{}}</script>`))
	f.Add([]byte("<html>"))
	f.Fuzz(func(t *testing.T, file []byte) {
		d, err := ReadReport(file)
		if err != nil {
			return
		}
		var v map[string]any
		if json.Unmarshal(d.Results, &v) != nil {
			t.Fatalf("read results that are not an object: %s", d.Results)
		}
	})
}
