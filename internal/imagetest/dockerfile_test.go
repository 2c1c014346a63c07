// Package imagetest checks the Dockerfile: base images pinned by digest, the builder's Go the
// one go.mod names, and no file capability on the agent.
package imagetest

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestDockerfile(t *testing.T) {
	df, err := os.ReadFile("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	pinned := regexp.MustCompile(`^FROM \S+@sha256:[0-9a-f]{64}( AS \S+)?$`)
	froms := 0
	for _, line := range strings.Split(string(df), "\n") {
		if !strings.HasPrefix(strings.ToUpper(line), "FROM ") {
			continue
		}
		froms++
		if !pinned.MatchString(line) {
			t.Errorf("not pinned by digest: %q (scripts/pin-images pins it)", line)
		}
	}
	if froms < 2 {
		t.Errorf("found %d FROM lines, want the builder and the base", froms)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(mod)
	if goVersion == nil {
		t.Fatal("go.mod has no go line")
	}
	want := "GOTOOLCHAIN=go" + string(goVersion[1])
	if m := regexp.MustCompile(`(?m)^toolchain (\S+)$`).FindSubmatch(mod); m != nil {
		want = "GOTOOLCHAIN=" + string(m[1])
	}
	if !strings.Contains(string(df), want) {
		t.Errorf("the builder does not set %s (go.mod's Go)", want)
	}
	for _, line := range strings.Split(string(df), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") && strings.Contains(line, "setcap") {
			t.Errorf("the image sets a file capability, which makes exec fail without NET_RAW in the bounding set: %q", line)
		}
	}
}
