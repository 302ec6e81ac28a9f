//! ipvsadm's command-line syntax and output layouts (placeholder; being written).
