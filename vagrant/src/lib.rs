//! Vagrant boxes (libvirt) and Vagrantfiles for local test appliances.
