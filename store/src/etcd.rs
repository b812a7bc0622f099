//! Placeholder: the etcd backend is being written.
