# Thin aliases for the scripts CI uses.
.PHONY: run test lint
run:
	scripts/run
test:
	scripts/test
lint:
	scripts/lint
