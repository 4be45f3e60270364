# Cycle-ready messages (probcast consume; KEDA scales the cycle Jobs on the subscription's
# backlog). A message delivered max_delivery_attempts times goes to the dead-letter topic,
# whose subscription keeps it for inspection.
locals {
  pubsub_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

data "google_project" "this" {
  project_id = var.project_id
}

resource "google_pubsub_topic" "cycles" {
  name                       = "probcast-cycles"
  message_retention_duration = "604800s"
  depends_on                 = [google_project_service.apis]
}

resource "google_pubsub_topic" "dead_letter" {
  name                       = "probcast-cycles-dead"
  message_retention_duration = "2678400s"
  depends_on                 = [google_project_service.apis]
}

resource "google_pubsub_subscription" "cycles" {
  name                       = "probcast-cycles-stations"
  topic                      = google_pubsub_topic.cycles.id
  ack_deadline_seconds       = 600
  message_retention_duration = "604800s"
  expiration_policy {
    ttl = ""
  }
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }
  # >= the pipeline file's broker.max_tries (overlays/prod-gcp/ops.yaml).
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = 5
  }
}

resource "google_pubsub_subscription" "dead_letter" {
  name                       = "probcast-cycles-dead-keep"
  topic                      = google_pubsub_topic.dead_letter.id
  message_retention_duration = "2678400s"
  expiration_policy {
    ttl = ""
  }
}

# Pub/Sub itself forwards undeliverable messages: it must publish to the dead-letter topic and
# acknowledge on the subscription.
resource "google_pubsub_topic_iam_member" "agent_dead_letter" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "agent_cycles" {
  subscription = google_pubsub_subscription.cycles.id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}
