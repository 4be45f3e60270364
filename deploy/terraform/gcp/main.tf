locals {
  name = "probcast"
  # Cost attribution: every resource carries these labels (provider default_labels); the
  # Kubernetes objects carry the same keys (deploy/kustomize, commonLabels).
  labels = {
    app         = "probcast"
    environment = var.environment
    team        = "forecasting"
    cost-center = "probcast-${var.environment}"
  }
  ksa = "serviceAccount:${var.project_id}.svc.id.goog[${var.namespace}/probcast]"
}

resource "google_project_service" "apis" {
  for_each = toset([
    "artifactregistry.googleapis.com",
    "container.googleapis.com",
    "file.googleapis.com", # Filestore, behind the cluster's standard-rwx storage class
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "secretmanager.googleapis.com",
    "servicenetworking.googleapis.com",
    "sqladmin.googleapis.com",
    "storage.googleapis.com",
  ])
  service            = each.value
  disable_on_destroy = false
}
