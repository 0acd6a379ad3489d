"""The system-design simulator (issue 14). The engine is the pure-Python package `simulator.engine`."""
