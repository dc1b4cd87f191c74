module ferry.test/template-oracle

go 1.24

require github.com/Masterminds/sprig/v3 v3.3.0
