output "cluster" {
  description = "GKE cluster name (gcloud container clusters get-credentials)."
  value       = google_container_cluster.main.name
}

output "image_repository" {
  description = "Docker repository of the images (deploy/kustomize/overlays/prod-gcp images)."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "buckets" {
  description = "Data and products buckets (mounted at /data and /products)."
  value = {
    data     = google_storage_bucket.data.name
    products = google_storage_bucket.products.name
  }
}

output "pubsub" {
  description = "Topic, subscription and dead-letter topic of the pipeline file's broker block."
  value = {
    topic        = google_pubsub_topic.cycles.name
    subscription = google_pubsub_subscription.cycles.name
    dead_letter  = google_pubsub_topic.dead_letter.name
  }
}

output "runtime_service_account" {
  description = "GCP service account of the probcast pods (Kubernetes SA annotation)."
  value       = google_service_account.runtime.email
}

output "keda_service_account" {
  description = "GCP service account for the KEDA operator's Kubernetes SA annotation."
  value       = google_service_account.keda.email
}

output "state_url_secret" {
  description = "Secret Manager secret holding the state store URL."
  value       = google_secret_manager_secret.state_url.secret_id
}
