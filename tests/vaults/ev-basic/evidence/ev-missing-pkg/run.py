import not_a_real_package_fmbuild  # noqa: F401
