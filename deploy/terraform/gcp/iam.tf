# Least privilege. Three service accounts:
# - probcast-runtime: the pods (Kubernetes SA probcast/probcast through Workload Identity):
#   objects of the two buckets, consume/publish on the cycle topic and subscription, publish to
#   the dead letter, connect to Cloud SQL. Roles on the resources themselves, not the project,
#   except Cloud SQL (project-level roles only).
# - probcast-nodes: the node VMs: logs, metrics, pulling images from the registry.
# - probcast-keda: the KEDA operator (keda/keda-operator): reads the subscription backlog from
#   Cloud Monitoring.
resource "google_service_account" "runtime" {
  account_id   = "probcast-runtime"
  display_name = "probcast pods (Workload Identity)"
}

resource "google_service_account" "nodes" {
  account_id   = "probcast-nodes"
  display_name = "probcast GKE nodes"
}

resource "google_service_account" "keda" {
  account_id   = "probcast-keda"
  display_name = "KEDA operator (Pub/Sub scaler)"
}

resource "google_service_account_iam_member" "runtime_workload_identity" {
  service_account_id = google_service_account.runtime.name
  role               = "roles/iam.workloadIdentityUser"
  member             = local.ksa
}

resource "google_service_account_iam_member" "keda_workload_identity" {
  service_account_id = google_service_account.keda.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[keda/keda-operator]"
}

resource "google_storage_bucket_iam_member" "runtime_data" {
  bucket = google_storage_bucket.data.name
  role   = "roles/storage.objectUser"
  member = google_service_account.runtime.member
}

resource "google_storage_bucket_iam_member" "runtime_products" {
  bucket = google_storage_bucket.products.name
  role   = "roles/storage.objectUser"
  member = google_service_account.runtime.member
}

resource "google_pubsub_subscription_iam_member" "runtime_consume" {
  subscription = google_pubsub_subscription.cycles.id
  role         = "roles/pubsub.subscriber"
  member       = google_service_account.runtime.member
}

resource "google_pubsub_topic_iam_member" "runtime_publish" {
  for_each = {
    cycles      = google_pubsub_topic.cycles.id
    dead_letter = google_pubsub_topic.dead_letter.id
  }
  topic  = each.value
  role   = "roles/pubsub.publisher"
  member = google_service_account.runtime.member
}

resource "google_project_iam_member" "runtime_sql" {
  project = var.project_id
  role    = "roles/cloudsql.client"
  member  = google_service_account.runtime.member
}

resource "google_project_iam_member" "nodes" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
  ])
  project = var.project_id
  role    = each.value
  member  = google_service_account.nodes.member
}

resource "google_artifact_registry_repository_iam_member" "nodes_pull" {
  repository = google_artifact_registry_repository.images.name
  location   = var.region
  role       = "roles/artifactregistry.reader"
  member     = google_service_account.nodes.member
}

resource "google_project_iam_member" "keda_monitoring" {
  project = var.project_id
  role    = "roles/monitoring.viewer"
  member  = google_service_account.keda.member
}
