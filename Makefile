# The two commands: `make demo` and `make test` (see README.md).
.PHONY: demo test bench stop-demo
demo:
	bash scripts/demo.sh
test:
	bash scripts/test.sh
bench:
	bash scripts/bench.sh
stop-demo:
	bash scripts/demo.sh stop
