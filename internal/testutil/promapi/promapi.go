// Package promapi reads a Prometheus server's HTTP API for the tests that run a real one: instant
// queries, and the firing alerts named by the labels that say what nodeping's alerts name.
package promapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Sample is one element of an instant query's result.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Query evaluates an instant PromQL query against the server at base (http://host:port).
func Query(ctx context.Context, base, q string) ([]Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("query %q: decode: %w", q, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", q, body.Error)
	}
	if body.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %q: result type %s, want vector", q, body.Data.ResultType)
	}
	out := make([]Sample, 0, len(body.Data.Result))
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: value %q: %w", q, s, err)
		}
		out = append(out, Sample{Labels: r.Metric, Value: v})
	}
	return out, nil
}

// Alert is an alert by its name and the labels that identify what it names.
type Alert struct {
	Name   string
	Labels map[string]string
}

// AlertLabels are the labels that identify what an alert names, in the order String prints them.
var AlertLabels = []string{"node", "zone", "source_zone", "destination_zone", "source_node", "destination_node"}

func (a Alert) String() string {
	var ls []string
	for _, k := range AlertLabels {
		if v, ok := a.Labels[k]; ok {
			ls = append(ls, k+"="+v)
		}
	}
	return a.Name + "{" + strings.Join(ls, ",") + "}"
}

// Alerts returns the alerts in a state (a regexp: firing, pending|firing), as Alert.String gives
// them, sorted.
func Alerts(ctx context.Context, base, state string) ([]string, error) {
	s, err := Query(ctx, base, fmt.Sprintf(`ALERTS{alertstate=~%q}`, state))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range s {
		l := map[string]string{}
		for _, k := range AlertLabels {
			if v, ok := a.Labels[k]; ok {
				l[k] = v
			}
		}
		out = append(out, Alert{a.Labels["alertname"], l}.String())
	}
	sort.Strings(out)
	return out, nil
}
