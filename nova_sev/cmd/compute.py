"""``nova-sev-compute``: Nova's own nova-compute service, with the SEV
driver available as ``compute_driver = sev_libvirt.SevLibvirtDriver``.

Run it where ``nova-compute`` would run, with the same arguments
(``--config-file /etc/nova/nova.conf``...). It registers the driver under
``nova.virt`` (Nova imports ``compute_driver`` from there only) and hands
over to ``nova.cmd.compute.main``, which runs the service exactly as
``nova-compute`` does, in the same concurrency mode.
"""


def main() -> None:
    # Imported first and here, not at module level: Nova's starter decides
    # on import whether to monkey patch (native threads by default for
    # nova-compute in Nova 34, eventlet on request) and must do so before
    # anything else imports Nova.
    from nova.cmd import compute as nova_compute

    from nova_sev.virt.libvirt import driver

    driver.register()
    nova_compute.main()
