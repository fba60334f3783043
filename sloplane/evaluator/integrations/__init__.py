"""Systems the evaluator acts on: the Argo CD deny window kept through the Kubernetes API."""
