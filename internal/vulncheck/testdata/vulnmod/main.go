// Command vulnmod calls a function with a known vulnerability (GO-2021-0113, golang.org/x/text
// before v0.3.7: language.Parse may panic), so that scripts/govulncheck --self-test can prove the
// check fails on a reachable vulnerability.
package main

import (
	"fmt"
	"os"

	"golang.org/x/text/language"
)

func main() {
	t, err := language.Parse(os.Args[1])
	fmt.Println(t, err)
}
