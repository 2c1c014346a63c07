module github.com/nodeping/nodeping

go 1.26.8

require (
	github.com/prometheus-community/pro-bing v0.9.1
	golang.org/x/net v0.62.0
	golang.org/x/sys v0.50.0
)

require (
	github.com/google/uuid v1.6.0 // indirect
	golang.org/x/sync v0.22.0 // indirect
)
