//! The cluster suite again, with blobs in an object store (Garage) as well
//! as metadata on PostgreSQL: the scale-out configuration. The harness
//! picks the backend from this binary's name (`s3_`).

#[path = "postgres_cluster.rs"]
mod postgres_cluster;
