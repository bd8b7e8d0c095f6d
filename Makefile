# Convenience wrappers; the README's two commands work without make.
.PHONY: demo test
demo:
	python3 quickstart.py demo
test:
	python3 quickstart.py test
