# The images (probcast, probcast-cuda). Old untagged images are cleaned up; the latest
# releases are kept.
resource "google_artifact_registry_repository" "images" {
  repository_id = "probcast"
  location      = var.region
  format        = "DOCKER"
  description   = "probcast container images (Dockerfile, Dockerfile.cuda)"

  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "1209600s"
    }
  }
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 20
    }
  }
  depends_on = [google_project_service.apis]
}
