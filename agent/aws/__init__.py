"""Adapters to AWS (boto3). ClientError becomes the typed errors of agent.errors here, at the edge."""
