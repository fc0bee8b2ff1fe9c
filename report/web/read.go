package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// dataOpen starts the element that holds a report's data (WriteReport).
const dataOpen = `<script id="loadswarm-data" type="application/json">`

// ReadReport reads the data back out of a report file that WriteReport
// wrote: an earlier run to compare with (`swarm report --baseline FILE`).
func ReadReport(file []byte) (ReportData, error) {
	var d ReportData
	i := bytes.Index(file, []byte(dataOpen))
	if i < 0 {
		return d, errors.New("not a Loadswarm report: it has no #loadswarm-data element")
	}
	rest := file[i+len(dataOpen):]
	j := bytes.Index(rest, []byte("</script>"))
	if j < 0 {
		return d, errors.New("a Loadswarm report cut short: its data element does not end")
	}
	if err := json.Unmarshal(rest[:j], &d); err != nil {
		return d, fmt.Errorf("a Loadswarm report with bad data: %v", err)
	}
	if err := checkObject("results", d.Results, true); err != nil {
		return d, err
	}
	return d, nil
}
