"""The evaluator API's paths that other systems are configured with (Argo, Spinnaker, CI, hooks).

Kept apart from the API module so that renderers can name them without importing the web stack.
"""

GATE_PATH = "/v1/gates/evaluate"
INCIDENTS_PATH = "/v1/incidents"
FREEZES_PATH = "/v1/freezes"
