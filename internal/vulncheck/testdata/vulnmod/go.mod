module example.com/vulnmod

go 1.27.3

require golang.org/x/text v0.3.5
