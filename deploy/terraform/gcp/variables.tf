variable "project_id" {
  description = "The GCP project that holds everything."
  type        = string
}

variable "region" {
  description = "Region of the buckets, registry, Cloud SQL and network."
  type        = string
  default     = "europe-west4"
}

variable "zone" {
  description = "Zone of the (zonal) GKE cluster; it must offer the GPU type."
  type        = string
  default     = "europe-west4-a"
}

variable "namespace" {
  description = "Kubernetes namespace of probcast (deploy/kustomize/overlays/prod-gcp)."
  type        = string
  default     = "probcast"
}

variable "environment" {
  description = "Environment label (cost attribution)."
  type        = string
  default     = "prod"
}

variable "cpu_machine_type" {
  description = "Machine type of the CPU pool (serve, cycles, schedule, monitor)."
  type        = string
  default     = "e2-standard-4"
}

variable "cpu_max_nodes" {
  description = "Most nodes of the CPU pool."
  type        = number
  default     = 6
}

variable "gpu_machine_type" {
  description = "Machine type of the GPU spot pool (training)."
  type        = string
  default     = "g2-standard-8"
}

variable "gpu_type" {
  description = "Accelerator of the GPU spot pool."
  type        = string
  default     = "nvidia-l4"
}

variable "gpu_max_nodes" {
  description = "Most nodes of the GPU spot pool."
  type        = number
  default     = 2
}

variable "inputs_retention_days" {
  description = "Days NWP inputs are kept in the data bucket (inputs/)."
  type        = number
  default     = 30
}

variable "work_retention_days" {
  description = "Days per-cycle work files are kept (work/)."
  type        = number
  default     = 7
}

variable "products_nearline_days" {
  description = "Age in days after which published products move to Nearline storage."
  type        = number
  default     = 30
}

variable "products_retention_days" {
  description = "Days published products are kept."
  type        = number
  default     = 400
}

variable "sql_tier" {
  description = "Cloud SQL machine tier of the state store."
  type        = string
  default     = "db-custom-1-3840"
}
