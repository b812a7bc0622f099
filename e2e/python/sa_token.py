"""The official Python client authenticating with a service-account token, as a program
running in a pod (or holding a `kubectl create token` token) does.

Run by e2e/tests/serviceaccounts.rs with SERVER and TOKEN set.
"""
import os
import sys

import urllib3
from kubernetes import client


def main() -> int:
    urllib3.disable_warnings()
    configuration = client.Configuration()
    configuration.host = os.environ["SERVER"]
    configuration.verify_ssl = False
    configuration.api_key = {"authorization": os.environ["TOKEN"]}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    api = client.ApiClient(configuration)

    review = client.AuthenticationV1Api(api).create_self_subject_review(client.V1SelfSubjectReview())
    user = review.status.user_info
    assert user.username == "system:serviceaccount:default:default", user
    assert "system:serviceaccounts:default" in user.groups, user.groups

    pods = client.CoreV1Api(api).list_namespaced_pod("default")
    assert pods.metadata.resource_version, pods.metadata

    try:
        bad = client.Configuration()
        bad.host = configuration.host
        bad.verify_ssl = False
        bad.api_key = {"authorization": os.environ["TOKEN"][:-4] + "AAAA"}
        bad.api_key_prefix = {"authorization": "Bearer"}
        client.CoreV1Api(client.ApiClient(bad)).list_namespaced_pod("default")
        raise AssertionError("a forged token was accepted")
    except client.ApiException as error:
        assert error.status == 401, error.status
    print("python token client ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
